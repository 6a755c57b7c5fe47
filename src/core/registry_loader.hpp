// SPDX-License-Identifier: Apache-2.0
// Where the registry comes from: flow_map_api (http(s) URL or file) -> cached copy -> built-in snapshot.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "flowd/scitags_registry.hpp"

namespace flowd {

struct RegistryLoad {
  std::shared_ptr<const ScitagsRegistry> registry;  // never null
  std::string warning;                              // non-empty when we fell back
};

// The registry JSON compiled into the binary (a copy of scitags.org/api.json).
std::string_view registry_snapshot_json();

RegistryLoad load_registry(std::string_view source, const std::string& work_dir, long timeout_seconds);

}  // namespace flowd
