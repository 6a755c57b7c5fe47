// SPDX-License-Identifier: Apache-2.0
// The one explicit table of plugins and backends (no static self-registration).
#pragma once

#include <span>
#include <string_view>

#include "flowd/component.hpp"

namespace flowd {

std::span<const KeySpec> core_keys();
std::span<const PluginInfo> plugin_table();
std::span<const BackendInfo> backend_table();
// Accept canonical names and the original README's aliases (udp-firefly, ebpf_el8, ebpf_el9).
const PluginInfo* find_plugin(std::string_view name);
const BackendInfo* find_backend(std::string_view name);

}  // namespace flowd
