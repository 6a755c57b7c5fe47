// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/start_times.hpp"

namespace flowd::udp_firefly {

TimePoint StartTimes::on_event(const FlowID& flow, TimePoint now) {
  FlowKey key = FlowKey::of(flow);
  if (flow.state == FlowState::kStart) {
    TimePoint t = flow.start_time.value_or(now);
    auto [it, fresh] = starts_.insert_or_assign(key, Tracked{t, ++seq_});
    order_.emplace_back(key, it->second.seq);
    while (starts_.size() > max_ && !order_.empty()) {
      auto& [k, s] = order_.front();
      if (auto old = starts_.find(k); old != starts_.end() && old->second.seq == s)
        starts_.erase(old);
      order_.pop_front();
    }
    if (order_.size() > 2 * max_ + 1024) compact_order();
    return t;
  }
  auto it = starts_.find(key);
  TimePoint t = flow.start_time
                    ? *flow.start_time
                    : (it != starts_.end() ? it->second.at : flow.end_time.value_or(now));
  if (flow.state == FlowState::kEnd && it != starts_.end()) starts_.erase(it);
  return t;
}

void StartTimes::compact_order() {
  std::deque<std::pair<FlowKey, std::uint64_t>> kept;
  for (auto& e : order_)
    if (auto it = starts_.find(e.first); it != starts_.end() && it->second.seq == e.second)
      kept.push_back(e);
  order_.swap(kept);
}

}  // namespace flowd::udp_firefly
