// SPDX-License-Identifier: Apache-2.0
// netflow: a NetFlow v1/v5/v9 and IPFIX collector (UDP; IPFIX also over TCP) whose tagged flows
// feed the bus like any other plugin's.
#pragma once

#include "flowd/component.hpp"

namespace flowd::netflow {
const PluginInfo& plugin_info();
// sflow: an sFlow v5 collector sharing the netflow plugin's receive path, flow tracking, label
// trust and observed-traffic metrics.
const PluginInfo& sflow_plugin_info();
}  // namespace flowd::netflow
