// SPDX-License-Identifier: Apache-2.0
// Public-IP discovery for udp_firefly (IP_DISCOVERY_ENABLED): behind NAT, fireflies must name the
// address the world sees, not the internal one. Internal addresses come from connected UDP sockets
// as in the Python original, public ones from a static mapping or from STUN.
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "flowd/flow_id.hpp"

namespace spdlog {
class logger;
}

namespace flowd::udp_firefly {

struct IpDiscoveryOptions {
  std::vector<std::string> stun_servers;  // tried in order
  std::string public_ip4, public_ip6;     // static mapping; skips STUN for that family
  std::chrono::milliseconds timeout{2000};
  int attempts = 3;
  // Where the connected probe sockets point (never sent to): the original's 10.255.255.255:1 and
  // [fc00::]:1.
  std::string probe4 = "10.255.255.255", probe6 = "fc00::";
};

// Internal -> public, per family; a family without both is left alone.
struct AddressMapping {
  std::optional<IpAddress> internal4, public4, internal6, public6;
  // The public address for `a` if it is the internal one of its family, else nullopt.
  std::optional<IpAddress> public_for(const IpAddress& a) const;
};

// The local address the kernel would use towards `probe` (nullopt without a route).
std::optional<IpAddress> local_address_towards(const std::string& probe);
// RFC 1918, 100.64/10, 198.18/15, link-local, loopback, ULA: what a NAT may hide.
bool is_private(const IpAddress& a);
// Never throws: what cannot be found is logged and left out (fireflies then go out unchanged).
// Takes up to timeout x attempts per STUN server and family; returns within one poll of `stop`
// being requested, with what it found by then.
AddressMapping discover_addresses(const IpDiscoveryOptions& o, spdlog::logger& log,
                                  std::stop_token stop = {});

}  // namespace flowd::udp_firefly
