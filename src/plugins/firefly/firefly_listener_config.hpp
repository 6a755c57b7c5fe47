// SPDX-License-Identifier: Apache-2.0
// The firefly listener's keys ([plugin.firefly]) and their typed, checked values. from() is the one
// place that reads the section; the plugin takes the struct.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/net/prefix.hpp"
#include "flowd/config.hpp"

namespace flowd::firefly {

// The key table (names, types, defaults, ranges, legacy names), for PluginInfo.
std::span<const KeySpec> config_keys();

struct FireflyListenerConfig {
  std::string host = "0.0.0.0";    // address to bind; "::" takes IPv4 too
  std::uint16_t port = 10514;      // UDP
  std::size_t max_size = 16384;    // bytes; larger datagrams are rejected (oversized)
  int rcvbuf = 8388608;            // SO_RCVBUF, bytes
  std::vector<net::Prefix> allow;  // senders allowed; empty: any

  // Throws ConfigError("[plugin.firefly] allow: ...") for an entry that is not an address or a CIDR
  // network.
  static FireflyListenerConfig from(const Section& cfg);
};

}  // namespace flowd::firefly
