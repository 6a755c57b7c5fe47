// SPDX-License-Identifier: Apache-2.0
// Per-flow `flow_tcp_*{src,dst,exp,act,flow}` series for every active local flow (whatever local
// plugin reported it; the backend passes no remote or observed flow). At each scrape one sock_diag
// dump supplies tcp_info for all of them, so a series exists exactly while its flow is active and
// its socket is on this host (ended flows vanish at once). Bounded (FlowTable, max_flow_series):
// beyond it the oldest-inserted flow loses its series to the new one, counted in the overflow
// counter (flowd_flow_series_overflow_total). Thread-safe: events arrive on the backend's thread,
// scrapes on the exposer's threads.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/flow_table.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/log.hpp"
#include "netlink/sock_diag.hpp"

namespace prometheus {
class Counter;
}

namespace flowd::prometheus_backend {

// A flow's experiment and activity as registry names, shared by every flow with the same pair.
struct FlowNames {
  std::string experiment, activity;
};

class FlowMetrics : public prometheus::Collectable {
 public:
  FlowMetrics(std::size_t max_series, prometheus::Counter& overflow)
      : flows_(max_series), overflow_(overflow) {}
  // A TCP flow starts (with its registry names) or ends. The label texts are made at scrape time,
  // not per event.
  void start(const FlowID& flow, std::shared_ptr<const FlowNames> names);
  void end(const FlowID& flow);
  std::vector<prometheus::MetricFamily> Collect() const override;
  std::size_t size() const;

 private:
  struct Labels {
    FlowKey key;
    std::shared_ptr<const FlowNames> names;
    bool scraped = false;  // in one scrape's copy: its series are out (one socket per flow)
  };
  using Flows = FlowTable<FlowKey, Labels, FlowKeyHash>;
  mutable std::mutex mu_;
  Flows flows_;
  prometheus::Counter& overflow_;
  mutable std::mutex scrape_mu_;  // one dump at a time
  mutable std::optional<netlink::SockDiag> diag_;
  mutable LogLimiter limiter_;  // a failing netlink socket would otherwise log on every scrape
};

}  // namespace flowd::prometheus_backend
