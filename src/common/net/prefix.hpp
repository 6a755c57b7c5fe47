// SPDX-License-Identifier: Apache-2.0
// An IP network in CIDR notation, for every key that takes networks (the scanners'
// internal_networks, netflow's allow and label_networks).
#pragma once

#include <optional>
#include <string>

#include "flowd/flow_id.hpp"

namespace flowd::net {

struct Prefix {
  IpAddress address;
  unsigned length = 0;  // bits: 0..32 for IPv4, 0..128 for IPv6
  // True when `a` is of the same family and its first `length` bits equal the prefix's.
  bool contains(const IpAddress& a) const;
};

// "192.168.0.0/16", "fd00::/8" or a bare address (a host prefix). nullopt when malformed or the
// length exceeds the family's width (RFC 4632 §3.1 notation; RFC 4291 §2.3 for IPv6).
std::optional<Prefix> parse_prefix(const std::string& text);

// A network as a configuration names it: parse_prefix, and also refused when the address has bits
// set beyond the length ("10.1.2.3/8": a host address where a network was meant, which a reader
// takes for a /32 and flowd would take for 10.0.0.0/8). On refusal `why` says what is wrong, for a
// ConfigError: "is not an address or CIDR network" or "has host bits set (the network is
// 10.0.0.0/8)". An IPv4-mapped network of /96 or longer ("::ffff:198.18.16.0/120") comes back as
// the IPv4 network it names (198.18.16.0/24): flowd sees mapped addresses as IPv4 everywhere.
std::optional<Prefix> parse_network(const std::string& text, std::string& why);

}  // namespace flowd::net
