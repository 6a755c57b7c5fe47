// SPDX-License-Identifier: Apache-2.0
// The iperf plugin's own keys ([plugin.iperf]: flow_ids, process, ports, proc_dir) and their typed,
// checked values; the keys it shares with the other scanners are read by scanner_options(). from()
// is the one place that reads them; the plugin takes the struct.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "flowd/config.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/scanner/connection_tracker.hpp"

namespace flowd::iperf {

// The whole key table (own keys and the scanners' shared ones), for PluginInfo.
std::span<const KeySpec> config_keys();

struct IperfConfig {
  std::vector<scanner::Tag> flow_ids;  // at least one; each connection gets one of them
  std::string process = "iperf3";      // comm of the processes whose connections are reported
  // Port mode (the original's iperf_rr): [first, last], both 1..65535; nullopt: process mode.
  std::optional<std::pair<unsigned, unsigned>> ports;
  std::string proc_dir = "/proc";

  // Throws ConfigError("[plugin.iperf] <key>: <why>"): a flow_ids entry that is not
  // EXPERIMENT:ACTIVITY of the registry, no entry at all, or ports that are not PORT or FIRST-LAST.
  static IperfConfig from(const Section& cfg, const ScitagsRegistry& registry);
};

}  // namespace flowd::iperf
