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

}  // namespace flowd::net
