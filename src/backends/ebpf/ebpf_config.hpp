// SPDX-License-Identifier: Apache-2.0
// The ebpf backend's keys ([backend.ebpf]) and their typed, checked values. from() is the one place
// that reads the section; the backend takes the struct.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "flowd/config.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::ebpf {

// The key table (names, types, defaults, ranges, legacy names), for BackendInfo.
std::span<const KeySpec> config_keys();

struct EbpfConfig {
  std::vector<std::string>
      interfaces;                     // egress marked; empty: every one with a global IPv6 address
  std::uint32_t max_flows = 100000;   // entries of the LRU flow map
  bool match_all = false;             // mark every IPv6 TCP/UDP packet with match_all_label
  std::uint32_t match_all_label = 0;  // the 20-bit label (entropy 0), when match_all
  std::string pin_path = "/sys/fs/bpf/flowd/flow_labels";  // empty: the map is not pinned

  // Throws ConfigError("[backend.ebpf] <key>: <why>"): match_all without an experiment and activity
  // the registry knows (names or ids that fit the label: spec/README.md "Flow label"), experiment
  // or activity without match_all, an interface name the kernel could never have (empty, longer
  // than IFNAMSIZ - 1, '/' or space), an entry of interfaces listed twice, or a pattern with a '['
  // that does not close.
  static EbpfConfig from(const Section& cfg, const ScitagsRegistry& registry);
};

}  // namespace flowd::ebpf
