// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/connection_filter.hpp"

#include <sys/socket.h>

#include <vector>

namespace flowd::scanner {

using net::parse_prefix;
using net::Prefix;

const std::vector<Prefix>& private_networks() {
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
  return kPrivate;
}

bool is_private_address(const IpAddress& a) {
  for (const auto& p : private_networks())
    if (p.contains(a)) return true;
  return false;
}

bool ConnectionFilter::accepts(const IpAddress& remote) const {
  if (ignore_private && is_private_address(remote)) return false;
  for (const auto& p : internal)
    if (p.contains(remote)) return false;
  return true;
}

}  // namespace flowd::scanner
