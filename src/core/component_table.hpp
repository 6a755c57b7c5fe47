// SPDX-License-Identifier: Apache-2.0
// What the daemon knows of the components: the tables the composition root (src/app/components.cpp)
// hands to the config loader and the runtime. The daemon layer never names a plugin or backend
// itself, so it builds without them (docs/architecture.md, "Layers").
#pragma once

#include <span>
#include <string_view>

#include "flowd/component.hpp"

namespace flowd {

// Another spelling accepted for a component name (the original README's udp-firefly, ebpf_el8,
// ...).
struct ComponentAlias {
  std::string_view alias, name;
};

struct ComponentTable {
  std::span<const PluginInfo> plugins;
  std::span<const BackendInfo> backends;
  std::span<const ComponentAlias> backend_aliases;

  // nullptr when no component of that name (or alias) exists.
  const PluginInfo* find_plugin(std::string_view name) const;
  const BackendInfo* find_backend(std::string_view name) const;
};

// The daemon's own keys, section [flowd] (plugins, backends, registry, log level, queue size, ...).
std::span<const KeySpec> core_keys();

}  // namespace flowd
