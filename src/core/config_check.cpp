// SPDX-License-Identifier: Apache-2.0
#include "core/config_check.hpp"

#include <prometheus/registry.h>

#include <stdexcept>

#include "core/registry_loader.hpp"
#include "flowd/component.hpp"
#include "flowd/metrics_hub.hpp"

namespace flowd {

namespace {

bool is_url(const std::string& s) {
  return s.starts_with("http://") || s.starts_with("https://");
}

template <typename Create>
void build(const std::string& path, const std::string& section, Create&& create) {
  try {
    create();
  } catch (const ConfigError& e) {
    throw ConfigError(in_config_file(path, e.what()));
  } catch (const std::exception& e) {
    throw ConfigError(in_config_file(path, "[" + section + "] " + e.what()));
  }
}

}  // namespace

std::string in_config_file(const std::string& path, const std::string& message) {
  if (path.empty() || message.starts_with(path + ": ")) return message;
  return path + ": " + message;
}

std::string check_components(const Config& c) {
  // A download is start-up's work: the check must neither wait on the network nor depend on it.
  std::string source = c.core.get("flow_map_api");
  if (is_url(source)) source.clear();
  RegistryLoad load = load_registry(source, c.core.get("work_dir"), 1);
  check_components(c, load.registry);
  return load.registry->source();
}

void check_components(const Config& c, std::shared_ptr<const ScitagsRegistry> reg) {
  RegistryHandle registry(std::move(reg));
  prometheus::Registry metrics;
  MetricsHub hub(metrics);
  Context ctx{.registry = registry,
              .metrics = metrics,
              .hub = hub,
              .hostname = c.core.get("hostname"),
              .work_dir = c.core.get("work_dir")};
  for (const auto& p : c.plugins) {
    std::string name(p.info->name);
    build(c.path, "plugin." + name, [&] { p.info->create(p.section, ctx, name.c_str()); });
  }
  for (const auto& b : c.backends)
    build(c.path, "backend." + std::string(b.info->name), [&] { b.info->create(b.section, ctx); });
}

}  // namespace flowd
