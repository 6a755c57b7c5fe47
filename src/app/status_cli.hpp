// SPDX-License-Identifier: Apache-2.0
// `flowd status [--json]` and `flowd flows [--json]`: what the running daemon says through its
// api plugin (GET /v1/status, GET /v1/flows), for a person.
#pragma once

#include <string>
#include <string_view>

#include "core/config_loader.hpp"

namespace flowd {

struct StatusOptions {
  std::string config_path;   // where [plugin.api] says where the API listens
  std::string socket;        // overrides: a unix socket path ...
  std::string address;       // ... or host:port
  bool json = false;         // print the API's JSON as it came
  std::size_t limit = 1000;  // flows: at most this many
};

// Why the value of --socket (`what` "PATH") or --address ("HOST[:PORT]") is refused, or "": when
// empty, when it is the next option (`--address --json` took "--json" for the address), or (an
// address) when it is not host[:port]. main.cpp's CLI11 prints "--address: <why>".
std::string check_api_option(const std::string& value, const std::string& what);
// Why a count option's value (--limit, analyze's --max-open and --buffer) is refused, or "": it
// must be a whole number from 1 to `max`; `what` says what it counts ("a count of flows").
std::string check_count(const std::string& value, std::string_view what, std::size_t max);
// check_count for --limit: 1..kMaxLimit flows.
inline constexpr std::size_t kMaxLimit = 1000000;
std::string check_limit(const std::string& value);

// Exit codes: 0 shown; 1 flowd is not running (nothing listens where it looked), the socket may
// not be opened by this user, the address cannot be reached, or what answers is not flowd's API
// (the message says which, and where it looked); 2 the configuration cannot be read or runs no API
// ('api' not in [flowd] plugins, whether a [plugin.api] section is there or not; or no listener).
int status_command(const StatusOptions& opts, const ComponentTable& components);
int flows_command(const StatusOptions& opts, const ComponentTable& components);

}  // namespace flowd
