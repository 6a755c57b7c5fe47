// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/connection_filter.hpp"

#include <sys/socket.h>

#include <charconv>

namespace flowd::netlink {

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

bool is_private_address(const IpAddress& a) {
  // Python 3.11 ipaddress._private_networks (IPv4 and IPv6).
  static const std::vector<Prefix> kPrivate = [] {
    std::vector<Prefix> v;
    for (const char* p :
         {"0.0.0.0/8",      "10.0.0.0/8",         "127.0.0.0/8",     "169.254.0.0/16",
          "172.16.0.0/12",  "192.0.0.0/29",       "192.0.0.170/31",  "192.0.2.0/24",
          "192.168.0.0/16", "198.18.0.0/15",      "198.51.100.0/24", "203.0.113.0/24",
          "240.0.0.0/4",    "255.255.255.255/32", "::1/128",         "::/128",
          "::ffff:0:0/96",  "100::/64",           "2001::/23",       "2001:2::/48",
          "2001:db8::/32",  "2001:10::/28",       "fc00::/7",        "fe80::/10"})
      v.push_back(*parse_prefix(p));
    return v;
  }();
  for (const auto& p : kPrivate)
    if (p.contains(a)) return true;
  return false;
}

bool ConnectionFilter::accepts(const IpAddress& remote) const {
  if (ignore_private && is_private_address(remote)) return false;
  for (const auto& p : internal)
    if (p.contains(remote)) return false;
  return true;
}

}  // namespace flowd::netlink
