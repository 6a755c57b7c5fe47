// SPDX-License-Identifier: Apache-2.0
// The udp_firefly backend's keys ([backend.udp_firefly]) and their typed, validated values. from()
// is the one place that reads the section and checks what the key table alone cannot (keys that
// need each other, a collector that must parse); the backend takes the struct.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/udp_firefly/ip_discovery.hpp"
#include "common/net/endpoint.hpp"
#include "flowd/config.hpp"

namespace flowd::udp_firefly {

// The key table (names, types, defaults, ranges, legacy names), for BackendInfo.
std::span<const KeySpec> config_keys();

// The most collectors one backend sends to (each is a metric label value).
inline constexpr std::size_t kMaxCollectors = 8;

struct UdpFireflyConfig {
  std::uint16_t port = 10514;  // destination UDP port at the flow's peer
  // Each gets a copy of every firefly (a port defaults to `port`); at most kMaxCollectors.
  std::vector<net::Endpoint> collectors;
  std::chrono::milliseconds collector_resolve_interval{std::chrono::minutes(5)};
  std::string ip4_src, ip6_src;  // written as src-ip of local flows' fireflies; "" = none
  bool syslog_header = true;
  std::size_t max_tracked_flows = 100000;  // each per-flow table's capacity (start times, netlink)
  bool ip_discovery = false;
  IpDiscoveryOptions discovery;  // STUN servers, static mapping, timeout, attempts
  bool netlink = false;
  std::chrono::seconds ongoing_interval{0};  // with netlink; 0 = no ongoing fireflies
  bool forward_observed = false;             // needs a collector

  // Throws ConfigError("[<section>] <key>: <why>") for a value the key table let through that
  // this backend cannot use.
  static UdpFireflyConfig from(const Section& cfg);
};

}  // namespace flowd::udp_firefly
