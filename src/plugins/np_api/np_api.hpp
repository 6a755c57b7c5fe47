// SPDX-License-Identifier: Apache-2.0
// np_api: transfer services write one flow per line into a named pipe (FIFO).
#pragma once

#include "flowd/component.hpp"

namespace flowd::np_api {
const PluginInfo& plugin_info();
}
