// SPDX-License-Identifier: Apache-2.0
// The component table. Adding a plugin or backend means adding one line here.
#include "app/components.hpp"

#include <array>

#include "backends/ebpf/ebpf_backend.hpp"
#include "backends/prometheus/prometheus_backend.hpp"
#include "backends/udp_firefly/udp_firefly.hpp"
#include "plugins/firefly/firefly_plugin.hpp"
#include "plugins/iperf/iperf_plugin.hpp"
#include "plugins/netflow/netflow_plugin.hpp"
#include "plugins/netlink/netlink_plugin.hpp"
#include "plugins/netstat/netstat_plugin.hpp"
#include "plugins/np_api/np_api.hpp"

namespace flowd {
namespace {

constexpr KeySpec kCoreKeys[] = {
    {"plugins", KeyType::kList, "", "plugins to run (np_api, netflow, sflow, firefly, netlink, netstat, iperf); several may run at once", "PLUGIN"},
    {"backends", KeyType::kList, "udp_firefly", "backends to run (udp_firefly, prometheus, ebpf)", "BACKEND"},
    {"flow_map_api", KeyType::kString, "",
     "Scitags registry: http(s) URL or file; empty = the built-in snapshot", "FLOW_MAP_API"},
    {.name = "flow_map_timeout", .type = KeyType::kDuration, .default_value = "5",
     .help = "how long to wait for an http(s) registry", .min = 1000, .max = 300 * 1000},
    {"work_dir", KeyType::kPath, "/var/cache/flowd", "cache directory (last good registry copy)", "WORK_DIR"},
    {"log_level", KeyType::kChoice, "info", "trace, debug, info, warn or error", {}, 0, 0,
     "trace,debug,info,warn,error"},
    {"queue_size", KeyType::kInt, "65536", "events buffered per backend; beyond this events are dropped and counted",
     {}, 1, 10000000},
    {"hostname", KeyType::kString, "", "HOSTNAME in firefly headers; empty = the system host name"},
};

const std::array<PluginInfo, 7>& plugins() {
  static const std::array<PluginInfo, 7> table{
      np_api::plugin_info(),
      netflow::plugin_info(),
      netflow::sflow_plugin_info(),
      firefly::plugin_info(),
      netlink_plugin::plugin_info(),
      netstat::plugin_info(),
      iperf::plugin_info(),
  };
  return table;
}

const std::array<BackendInfo, 3>& backends() {
  static const std::array<BackendInfo, 3> table{
      udp_firefly::backend_info(),
      prometheus_backend::backend_info(),
      ebpf::backend_info(),
  };
  return table;
}

struct Alias {
  std::string_view alias, name;
};
constexpr Alias kBackendAliases[] = {{"udp-firefly", "udp_firefly"}, {"ebpf_el8", "ebpf"}, {"ebpf_el9", "ebpf"}};

}  // namespace

std::span<const KeySpec> core_keys() { return kCoreKeys; }
std::span<const PluginInfo> plugin_table() { return plugins(); }
std::span<const BackendInfo> backend_table() { return backends(); }

const PluginInfo* find_plugin(std::string_view name) {
  for (const auto& p : plugins())
    if (p.name == name) return &p;
  return nullptr;
}

const BackendInfo* find_backend(std::string_view name) {
  for (const auto& a : kBackendAliases)
    if (a.alias == name) name = a.name;
  for (const auto& b : backends())
    if (b.name == name) return &b;
  return nullptr;
}

}  // namespace flowd
