// SPDX-License-Identifier: Apache-2.0
// What the core lends a backend (Context: the registry compiled into flowd, a metrics registry and
// hub), for tests that build real backends from their BackendInfo and read their metrics.
#pragma once

#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>

#include "core/registry_loader.hpp"
#include "flowd/component.hpp"
#include "flowd/metrics_hub.hpp"
#include "registry_metrics.hpp"

namespace flowd::test {

struct BackendEnv {
  RegistryHandle registry{load_registry("", "/nonexistent", 1).registry};
  prometheus::Registry metrics;
  MetricsHub hub{metrics};
  Context ctx{registry, metrics, hub, "host.example", "/nonexistent"};

  // The backend `info` makes from a [backend.NAME] section of `v` and the table's defaults.
  std::unique_ptr<Backend> create(const BackendInfo& info, std::map<std::string, std::string> v) {
    for (const auto& k : info.keys)
      if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
    return info.create(Section("backend." + std::string(info.name), info.keys, v, {}), ctx);
  }
  // A series' value; -1 when it does not exist.
  double value(const std::string& name, const std::map<std::string, std::string>& labels) {
    return metric_value(metrics, name, labels).value_or(-1);
  }
};

}  // namespace flowd::test
