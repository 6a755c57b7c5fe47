// SPDX-License-Identifier: Apache-2.0
// firefly: a UDP listener for fireflies from other hosts (Python flowd, flowd-go, XRootD); each one
// becomes a FlowID, and with udp_firefly's `collector` set, flowd relays them (a concentrator).
#pragma once

#include "flowd/component.hpp"

namespace flowd::firefly {
const PluginInfo& plugin_info();
}
