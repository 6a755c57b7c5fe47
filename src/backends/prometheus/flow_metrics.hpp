// SPDX-License-Identifier: Apache-2.0
// Per-flow `flow_tcp_*{src,dst,exp,act,flow}` series for every active local flow (whatever local
// plugin reported it; the backend passes no remote or observed flow). At each scrape one sock_diag
// dump supplies tcp_info for all of them, so a series exists exactly while its flow is active and
// its socket is on this host (ended flows vanish at once). Thread-safe: events arrive on the
// backend's thread, scrapes on the exposer's threads.
#pragma once

#include <prometheus/collectable.h>

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "flowd/log.hpp"
#include "flowd/flow_id.hpp"
#include "netlink/sock_diag.hpp"

namespace prometheus {
class Counter;
}

namespace flowd::prometheus_backend {

class FlowMetrics : public prometheus::Collectable {
 public:
  FlowMetrics(std::size_t max_series, prometheus::Counter& overflow)
      : max_(max_series), overflow_(overflow) {}
  // A TCP flow starts (with its registry names) or ends.
  void start(const FlowID& flow, std::string experiment, std::string activity);
  void end(const FlowID& flow);
  std::vector<prometheus::MetricFamily> Collect() const override;
  std::size_t size() const;

 private:
  struct Labels {
    std::string src, dst, exp, act, flow;
  };
  std::size_t max_;
  prometheus::Counter& overflow_;
  mutable std::mutex mu_;
  std::unordered_map<FlowKey, Labels, FlowKeyHash> flows_;
  mutable std::mutex scrape_mu_;  // one dump at a time
  mutable std::optional<netlink::SockDiag> diag_;
  mutable LogLimiter limiter_;  // a failing netlink socket would otherwise log on every scrape
};

}  // namespace flowd::prometheus_backend
