// SPDX-License-Identifier: Apache-2.0
// The np_api plugin's keys ([plugin.np_api]) and their typed, checked values. from() is the one
// place that reads the section; the plugin takes the struct.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "flowd/config.hpp"

namespace flowd::np_api {

// The key table (names, types, defaults, ranges, legacy names), for PluginInfo.
std::span<const KeySpec> config_keys();

struct NpApiConfig {
  std::string path = "/var/run/flowd";              // the FIFO
  mode_t mode = 0666;                               // set on the pipe, made or found
  std::optional<gid_t> group;                       // nullopt: flowd's group
  std::size_t max_line_length = 4096;               // bytes; longer lines are rejected (too_long)
  std::chrono::milliseconds partial_timeout{1000};  // a line without its newline this long: dropped
  // Between two checks of the pipe's TCP flows against the kernel's sockets; 0: none
  // (plugins/scanner/connection_watch.hpp).
  std::chrono::seconds check_interval{60};

  // Throws ConfigError("[plugin.np_api] <key>: <why>") for a value the key table let through that
  // the plugin cannot use (a group that does not exist).
  static NpApiConfig from(const Section& cfg);
};

}  // namespace flowd::np_api
