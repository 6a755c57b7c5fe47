// SPDX-License-Identifier: Apache-2.0
// The per-flow `flow_tcp_*` series of the Python original (whose names follow `ss -tinm` keys),
// read from tcp_info instead of ss output. Times are in milliseconds and rates in bits per second,
// as ss prints them; names with bytes/segs/retrans are counters (`_total`), the rest gauges.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "netlink/sock_diag.hpp"

namespace flowd::prometheus_backend {

struct TcpMetricSpec {
  const char* name;  // full series name, e.g. "flow_tcp_rtt"
  const char* help;
  bool counter;
  // nullopt when the kernel did not send the field (older kernel) or ss would not print it.
  std::optional<double> (*value)(const netlink::TcpDetails& d);
};

std::span<const TcpMetricSpec> tcp_metric_specs();

// The words ss prints without a value: "ts sack ecn bbr wscale:7,7".
std::string tcp_options_text(const netlink::TcpDetails& d);

}  // namespace flowd::prometheus_backend
