// SPDX-License-Identifier: Apache-2.0
// Name look-up in the component table, and the daemon's own [flowd] keys.
#include "core/component_table.hpp"

namespace flowd {
namespace {

constexpr KeySpec kCoreKeys[] = {
    {"plugins", KeyType::kList, "",
     "plugins to run (np_api, api, netflow, sflow, firefly, netlink, kernel, netstat, iperf); "
     "several may run at once",
     "PLUGIN"},
    {"backends", KeyType::kList, "udp_firefly",
     "backends to run (udp_firefly, prometheus, ebpf, kafka)", "BACKEND"},
    {"flow_map_api", KeyType::kString, "",
     "Scitags registry: http(s) URL or file; empty = the built-in snapshot", "FLOW_MAP_API"},
    {.name = "flow_map_timeout",
     .type = KeyType::kDuration,
     .default_value = "5",
     .help = "how long to wait for an http(s) registry",
     .min = 1000,
     .max = 300 * 1000},
    {.name = "registry_refresh",
     .type = KeyType::kDuration,
     .default_value = "1h",
     .help = "fetch flow_map_api again this often in the background (conditional: ETag, "
             "Last-Modified); a failure keeps the registry in use; 0 = only at start and reload",
     .min = 0,
     .max = 7 * 86400 * 1000},
    {.name = "work_dir",
     .type = KeyType::kPath,
     .default_value = "/var/cache/flowd",
     .help = "cache directory (last good registry copy, the marker's record, the flow journal); "
             "empty: none kept",
     .legacy = "WORK_DIR",
     .empty_allowed = true},
    {"log_level",
     KeyType::kChoice,
     "info",
     "trace, debug, info, warn or error",
     {},
     0,
     0,
     "trace,debug,info,warn,error"},
    {"queue_size",
     KeyType::kInt,
     "65536",
     "events buffered per backend; beyond this events are dropped and counted",
     {},
     1,
     10000000},
    {"hostname", KeyType::kString, "", "HOSTNAME in firefly headers; empty = the system host name"},
};

}  // namespace

std::span<const KeySpec> core_keys() {
  return kCoreKeys;
}

const PluginInfo* ComponentTable::find_plugin(std::string_view name) const {
  for (const auto& p : plugins)
    if (p.name == name) return &p;
  return nullptr;
}

const BackendInfo* ComponentTable::find_backend(std::string_view name) const {
  for (const auto& a : backend_aliases)
    if (a.alias == name) name = a.name;
  for (const auto& b : backends)
    if (b.name == name) return &b;
  return nullptr;
}

}  // namespace flowd
