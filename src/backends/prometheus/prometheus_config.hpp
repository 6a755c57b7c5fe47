// SPDX-License-Identifier: Apache-2.0
// The prometheus backend's keys ([backend.prometheus]) and their typed, checked values. from() is
// the one place that reads the section; the backend takes the struct.
#pragma once

#include <cstddef>
#include <span>

#include "common/net/endpoint.hpp"
#include "flowd/config.hpp"

namespace flowd::prometheus_backend {

// The key table (names, types, defaults, ranges, legacy names), for BackendInfo.
std::span<const KeySpec> config_keys();

struct PrometheusConfig {
  net::Endpoint listen{"127.0.0.1", 9000};  // where /metrics is served (HTTP)
  std::size_t max_active_flows = 100000;    // per origin, for flowd_active_flows
  bool flow_metrics = true;                 // per-flow flow_tcp_* series for local TCP flows
  std::size_t max_flow_series = 10000;      // flows with flow_tcp_* series at once

  // Throws ConfigError("[backend.prometheus] listen: ...") for an address that is not
  // host:port (the key table checks only that it is text), so --check-config refuses it too.
  static PrometheusConfig from(const Section& cfg);
};

}  // namespace flowd::prometheus_backend
