// SPDX-License-Identifier: Apache-2.0
#include "common/net/prefix.hpp"

#include <charconv>

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

}  // namespace flowd::net
