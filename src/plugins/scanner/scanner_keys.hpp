// SPDX-License-Identifier: Apache-2.0
// The key rows the three scanners (netlink, netstat, iperf) share, written once. Each scanner joins
// them with its own rows into its table (`join`), in the order its README section shows; only the
// legacy flowd.cfg names differ (NETLINK_* or NETSTAT_*; iperf had none).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "flowd/config.hpp"

namespace flowd::scanner {

// experiment, activity and rules: how netlink and netstat tag a connection (port_rule_tagger).
constexpr std::array<KeySpec, 3> tag_keys(std::string_view legacy_experiment,
                                          std::string_view legacy_activity) {
  return {{
      {"experiment", KeyType::kString, "",
       "experiment (id or registry name) of every reported connection", legacy_experiment},
      {"activity", KeyType::kString, "",
       "activity (id or name) of every reported connection; left out while experiment is set: 0, "
       "with a warning",
       legacy_activity},
      {"rules", KeyType::kList, "",
       "tags by local port, 'PORT EXPERIMENT ACTIVITY' (e.g. 1094 cms Cache); without experiment "
       "only these "
       "connections are reported"},
  }};
}

// internal_networks, ignore_private, report_existing and interval: what every scanner reads
// (scanner_options).
constexpr std::array<KeySpec, 4> scan_keys(std::string_view legacy_internal_networks,
                                           std::string_view legacy_interval) {
  return {{
      {"internal_networks", KeyType::kList, "",
       "connections to these networks (CIDR) are not reported", legacy_internal_networks},
      {"ignore_private", KeyType::kBool, "yes",
       "do not report connections to private addresses (RFC 1918, ULA, ...)"},
      {"report_existing", KeyType::kBool, "no", "report connections that exist when flowd starts"},
      // Sub-second scans are allowed: the timer is a timerfd armed in milliseconds
      // (scanner_plugin.cpp).
      {.name = "interval",
       .type = KeyType::kDuration,
       .default_value = "2",
       .help = "time between two scans",
       .legacy = legacy_interval,
       .min = 100,
       .max = 3600 * 1000,
       .unit = DurationUnit::kSeconds,
       .resolution = DurationUnit::kMilliseconds},
  }};
}

// The rows of `parts`, one after the other.
template <std::size_t... N>
constexpr std::array<KeySpec, (N + ...)> join(const std::array<KeySpec, N>&... parts) {
  std::array<KeySpec, (N + ...)> out{};
  std::size_t i = 0;
  ((std::copy(parts.begin(), parts.end(), out.begin() + static_cast<std::ptrdiff_t>(i)), i += N),
   ...);
  return out;
}

}  // namespace flowd::scanner
