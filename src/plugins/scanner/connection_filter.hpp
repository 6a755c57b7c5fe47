// SPDX-License-Identifier: Apache-2.0
// Which connections the scanners (netlink, netstat, iperf) report: destinations inside the
// configured internal networks, or private ones while ignore_private is on, are not.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/net/prefix.hpp"
#include "flowd/flow_id.hpp"

namespace flowd::scanner {

// Python's ipaddress.is_private (the test the original scanners use): RFC 1918, loopback,
// link-local, documentation and benchmarking ranges, ULA, and the like.
bool is_private_address(const IpAddress& a);
// Those ranges (IPv4 and IPv6), for whoever applies the same test elsewhere (the kernel plugin's
// BPF program).
const std::vector<net::Prefix>& private_networks();

struct ConnectionFilter {
  std::vector<net::Prefix> internal;
  bool ignore_private = true;
  // True when a connection to `remote` is to be reported.
  bool accepts(const IpAddress& remote) const;
};

}  // namespace flowd::scanner
