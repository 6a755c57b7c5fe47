// SPDX-License-Identifier: Apache-2.0
// What /metrics serves: the shared registry plus collectors that read their values at scrape time
// (the BPF marker's per-CPU counters, for one). Thread-safe: scrapes run on the exposer's threads.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/registry.h>

#include <mutex>
#include <vector>

namespace flowd {

class MetricsHub : public prometheus::Collectable {
 public:
  explicit MetricsHub(prometheus::Registry& registry) : registry_(registry) {}
  // The collector must stay valid until remove() returns.
  void add(const prometheus::Collectable* c);
  void remove(const prometheus::Collectable* c);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  prometheus::Registry& registry_;
  mutable std::mutex mu_;
  std::vector<const prometheus::Collectable*> extra_;
};

}  // namespace flowd
