// SPDX-License-Identifier: Apache-2.0
// `flowd status [--json]` and `flowd flows [--json]`: what the running daemon says through its
// api plugin (GET /v1/status, GET /v1/flows), for a person.
#pragma once

#include <string>

#include "core/config_loader.hpp"

namespace flowd {

struct StatusOptions {
  std::string config_path;   // where [plugin.api] says where the API listens
  std::string socket;        // overrides: a unix socket path ...
  std::string address;       // ... or host:port
  bool json = false;         // print the API's JSON as it came
  std::size_t limit = 1000;  // flows: at most this many
};

// Exit codes: 0 shown; 1 flowd is not running or did not answer (the message says which, and
// where it looked); 2 the configuration cannot be read.
int status_command(const StatusOptions& opts, const ComponentTable& components);
int flows_command(const StatusOptions& opts, const ComponentTable& components);

}  // namespace flowd
