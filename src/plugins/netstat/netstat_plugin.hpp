// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "flowd/component.hpp"

namespace flowd::netstat {
// Reports TCP connections read from /proc/net/tcp and /proc/net/tcp6 every `interval`.
const PluginInfo& plugin_info();
}  // namespace flowd::netstat
