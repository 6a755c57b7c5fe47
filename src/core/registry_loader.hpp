// SPDX-License-Identifier: Apache-2.0
// Where the registry comes from: flow_map_api (http(s) URL or file) -> cached copy -> built-in
// snapshot.
#pragma once

#include <memory>
#include <stop_token>
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

// An http(s) download takes at most `timeout_seconds` and gives up within about a second of `stop`
// being requested (then the fallbacks apply as for any failed download).
RegistryLoad load_registry(std::string_view source, const std::string& work_dir,
                           long timeout_seconds, std::stop_token stop = {});

}  // namespace flowd
