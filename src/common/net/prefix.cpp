// SPDX-License-Identifier: Apache-2.0
#include "common/net/prefix.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

namespace flowd::net {

bool Prefix::contains(const IpAddress& a) const {
  if (address.family != a.family) return false;
  unsigned full = length / 8, rest = length % 8;
  for (unsigned i = 0; i < full; ++i)
    if (address.bytes[i] != a.bytes[i]) return false;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (address.bytes[full] & mask) == (a.bytes[full] & mask);
}

std::optional<Prefix> parse_prefix(const std::string& text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return std::nullopt;
  unsigned max = addr->is_v4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string::npos) {
    const char* b = text.data() + slash + 1;
    const char* e = text.data() + text.size();
    auto [p, ec] = std::from_chars(b, e, len);
    if (b == e || ec != std::errc() || p != e || len > max) return std::nullopt;
  }
  return Prefix{*addr, len};
}

std::optional<Prefix> parse_network(const std::string& text, std::string& why) {
  auto p = parse_prefix(text);
  if (!p) {
    why = "is not an address or CIDR network";
    return std::nullopt;
  }
  Prefix masked = *p;
  const std::size_t width = p->address.is_v4() ? 4 : 16;
  for (std::size_t i = 0; i < width; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (first_bit >= p->length) {
      masked.address.bytes[i] = 0;
    } else if (p->length - first_bit < 8) {
      masked.address.bytes[i] &= static_cast<std::uint8_t>(0xFF << (8 - (p->length - first_bit)));
    }
  }
  if (masked.address.bytes != p->address.bytes) {
    // Appended piece by piece: GCC 12 at -O3 warns falsely on a chain of operator+ here.
    why = "has host bits set (the network is ";
    why += masked.address.to_string();
    why += '/';
    why += std::to_string(p->length);
    why += ')';
    return std::nullopt;
  }
  // An IPv4-mapped network (::ffff:a.b.c.d/N, RFC 4291 §2.5.5.2; `ss` prints a dual-stack
  // socket's IPv4 peer so): flowd sees every such address as IPv4 (sock_diag, the kernel plugin,
  // a sender's address), so the network is the IPv4 one, /N-96. A mapped network shorter than /96
  // has host bits set in the ffff and is refused above.
  static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (p->address.is_v6() && p->length >= 96 &&
      std::equal(kMapped.begin(), kMapped.end(), p->address.bytes.begin())) {
    Prefix v4;
    v4.address.family = AF_INET;
    std::copy_n(p->address.bytes.begin() + 12, 4, v4.address.bytes.begin());
    v4.length = p->length - 96;
    return v4;
  }
  return p;
}

}  // namespace flowd::net
