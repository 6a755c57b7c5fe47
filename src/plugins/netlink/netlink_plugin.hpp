// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "flowd/component.hpp"

namespace flowd::netlink_plugin {
// Reports TCP connections found by a sock_diag (netlink) dump every `interval`.
const PluginInfo& plugin_info();
}  // namespace flowd::netlink_plugin
