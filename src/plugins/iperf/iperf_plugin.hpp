// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "flowd/component.hpp"

namespace flowd::iperf {
// Reports the TCP connections of iperf3 processes (or of a port range), each with an
// experiment/activity pair picked from `flow_ids`, for tests and demonstrations.
const PluginInfo& plugin_info();
}  // namespace flowd::iperf
