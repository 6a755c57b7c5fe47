// SPDX-License-Identifier: Apache-2.0
#include "backends/prometheus/prometheus_config.hpp"

namespace flowd::prometheus_backend {
namespace {

// A table, one key per entry: kept as written.
// clang-format off
constexpr KeySpec kKeys[] = {
    {"listen", KeyType::kEndpoint, "127.0.0.1:9000",
     "address:port of the /metrics endpoint (legacy PROMETHEUS_SRV_PORT=N means 0.0.0.0:N)",
     "PROMETHEUS_SRV_PORT"},
    {"max_active_flows", KeyType::kInt, "100000",
     "flows tracked for flowd_active_flows, per origin; beyond this the oldest tracked flow is "
     "forgotten for the new one, counted in flowd_active_flows_overflow_total",
     {}, 1, 100000000},
    {"flow_metrics", KeyType::kBool, "yes",
     "per-flow flow_tcp_* series (tcp_info from netlink) for every active local TCP flow whose socket is on this "
     "host"},
    {"max_flow_series", KeyType::kInt, "10000",
     "flows with per-flow series at once; beyond this the oldest flow's series give way to the new one's, "
     "counted in flowd_flow_series_overflow_total", {}, 1,
     10000000},
};
// clang-format on

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

PrometheusConfig PrometheusConfig::from(const Section& cfg) {
  PrometheusConfig c;
  const std::string listen = cfg.get("listen");
  auto ep = net::parse_endpoint(listen, 9000);
  if (!ep || ep->host.empty())
    throw ConfigError("[backend.prometheus] listen: '" + listen +
                      "' is not an address:port (e.g. 127.0.0.1:9000 or [::1]:9000)");
  c.listen = *ep;
  c.max_active_flows = static_cast<std::size_t>(cfg.get_int("max_active_flows"));
  c.flow_metrics = cfg.get_bool("flow_metrics");
  c.max_flow_series = static_cast<std::size_t>(cfg.get_int("max_flow_series"));
  return c;
}

}  // namespace flowd::prometheus_backend
