// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/start_times.hpp"

namespace flowd::udp_firefly {

TimePoint StartTimes::on_event(const FlowID& flow, TimePoint now) {
  const FlowKey key = FlowKey::of(flow);
  switch (flow.state) {
    case FlowState::kStart: {
      // A repeated start restarts the flow's clock (it keeps its place in the eviction order).
      const TimePoint t = flow.start_time.value_or(now);
      *starts_.emplace(key, t).first = t;
      return t;
    }
    case FlowState::kEnd: {
      auto seen = starts_.extract(key);
      if (flow.start_time) return *flow.start_time;
      return seen ? *seen : flow.end_time.value_or(now);
    }
    case FlowState::kOngoing:
      break;
  }
  if (flow.start_time) return *flow.start_time;
  const TimePoint* seen = starts_.find(key);
  return seen ? *seen : flow.end_time.value_or(now);
}

void StartTimes::take_over(const StartTimes& old) {
  old.starts_.for_each([&](const FlowKey& key, const TimePoint& t) { starts_.emplace(key, t); });
}

}  // namespace flowd::udp_firefly
