// SPDX-License-Identifier: Apache-2.0
// The api plugin's keys ([plugin.api]) and their typed, checked values. from() is the one place
// that reads the section; the plugin takes the struct.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "common/net/endpoint.hpp"
#include "flowd/config.hpp"

namespace flowd::api {

std::span<const KeySpec> config_keys();

inline constexpr std::uint16_t kDefaultPort = 8787;

struct ApiConfig {
  std::string socket = "/run/flowd.sock";  // unix socket; empty: none
  mode_t mode = 0666;                      // set on the socket file
  std::optional<gid_t> group;              // nullopt: flowd's group
  std::optional<net::Endpoint> listen;     // TCP address (an IP literal); nullopt: none
  bool is_public = false;                  // a non-loopback `listen` was allowed
  std::size_t threads = 8;                 // per listener: connections served at once
  std::size_t queue = 64;         // per listener: accepted connections waiting for a thread
  std::size_t max_body = 262144;  // bytes; a larger POST body: 413
  std::size_t max_flows = 1000;   // flows in one POST; more: 413
  std::chrono::milliseconds timeout{5000};             // one read or write on a connection
  std::chrono::milliseconds request_timeout{10000};    // a whole request, from its first byte
  std::chrono::milliseconds keep_alive_timeout{5000};  // idle between requests
  std::size_t keep_alive_max = 100;                    // requests on one connection
  // Between two checks of the API's TCP flows against the kernel's sockets; 0: none
  // (plugins/scanner/connection_watch.hpp).
  std::chrono::seconds check_interval{60};

  // Throws ConfigError("[plugin.api] <key>: <why>").
  static ApiConfig from(const Section& cfg);
};

// Whether `host` (an IP literal or "localhost") is a loopback address: 127.0.0.0/8, ::1,
// ::ffff:127.0.0.0/104.
bool is_loopback_host(const std::string& host);

}  // namespace flowd::api
