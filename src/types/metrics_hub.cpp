// SPDX-License-Identifier: Apache-2.0
#include "flowd/metrics_hub.hpp"

#include <algorithm>

namespace flowd {

void MetricsHub::add(const prometheus::Collectable* c) {
  std::lock_guard lock(mu_);
  extra_.push_back(c);
}

void MetricsHub::remove(const prometheus::Collectable* c) {
  std::lock_guard lock(mu_);
  extra_.erase(std::remove(extra_.begin(), extra_.end(), c), extra_.end());
}

std::vector<prometheus::MetricFamily> MetricsHub::Collect() const {
  auto out = registry_.Collect();
  std::lock_guard lock(mu_);
  for (const auto* c : extra_) {
    auto more = c->Collect();
    out.insert(out.end(), std::make_move_iterator(more.begin()),
               std::make_move_iterator(more.end()));
  }
  return out;
}

}  // namespace flowd
