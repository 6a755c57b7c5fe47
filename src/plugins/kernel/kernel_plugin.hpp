// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "flowd/component.hpp"

namespace flowd::kernel {
// Reports TCP connections as the kernel changes their state (BPF on sock:inet_sock_set_state),
// falling back to the netlink scanner's polling where BPF cannot be loaded.
const PluginInfo& plugin_info();
}  // namespace flowd::kernel
