// SPDX-License-Identifier: Apache-2.0
// The supervisor: starts components, then waits on signals, worker failures and the watchdog.
#pragma once

#include <string>

#include "core/component_table.hpp"

namespace flowd {

struct DaemonOptions {
  std::string config_path;
  bool debug = false;
};

// Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration. `components` (from the
// composition root) must outlive the call; the configuration is read against it at start and
// reload.
int run_daemon(const DaemonOptions& opts, const ComponentTable& components);

}  // namespace flowd
