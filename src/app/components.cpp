// SPDX-License-Identifier: Apache-2.0
// The component table. Adding a plugin or backend means adding one line here (and linking its
// library to flowd_app in src/app/CMakeLists.txt).
#include "app/components.hpp"

#include <array>

#include "backends/ebpf/ebpf_backend.hpp"
#include "backends/kafka/kafka_backend.hpp"
#include "backends/prometheus/prometheus_backend.hpp"
#include "backends/udp_firefly/udp_firefly.hpp"
#include "plugins/api/api_plugin.hpp"
#include "plugins/firefly/firefly_plugin.hpp"
#include "plugins/iperf/iperf_plugin.hpp"
#include "plugins/kernel/kernel_plugin.hpp"
#include "plugins/netflow/netflow_plugin.hpp"
#include "plugins/netlink/netlink_plugin.hpp"
#include "plugins/netstat/netstat_plugin.hpp"
#include "plugins/np_api/np_api.hpp"

namespace flowd {
namespace {

constexpr ComponentAlias kBackendAliases[] = {
    {"udp-firefly", "udp_firefly"}, {"ebpf_el8", "ebpf"}, {"ebpf_el9", "ebpf"}};

}  // namespace

const ComponentTable& component_table() {
  static const std::array<PluginInfo, 9> plugins{
      np_api::plugin_info(),        api::plugin_info(),     netflow::plugin_info(),
      netflow::sflow_plugin_info(), firefly::plugin_info(), netlink_plugin::plugin_info(),
      kernel::plugin_info(),        netstat::plugin_info(), iperf::plugin_info(),
  };
  static const std::array<BackendInfo, 4> backends{
      udp_firefly::backend_info(),
      prometheus_backend::backend_info(),
      ebpf::backend_info(),
      kafka::backend_info(),
  };
  static const ComponentTable table{plugins, backends, kBackendAliases};
  return table;
}

}  // namespace flowd
