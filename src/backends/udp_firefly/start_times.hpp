// SPDX-License-Identifier: Apache-2.0
// The start time of every flow udp_firefly sends fireflies for, so that its end firefly carries the
// real start-time the schema requires. Bounded: beyond `max_flows` the oldest starts are forgotten.
// Single-threaded: the udp_firefly backend's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <utility>

#include "flowd/flow_id.hpp"

namespace flowd::udp_firefly {

class StartTimes {
 public:
  explicit StartTimes(std::size_t max_flows) : max_(max_flows) {}
  // The start-time for this event's firefly: the start we saw for this flow, else the time the
  // plugin gave, else the event's own time. A start is remembered, an end forgets.
  TimePoint on_event(const FlowID& flow, TimePoint now);
  std::size_t size() const { return starts_.size(); }

 private:
  struct Tracked {
    TimePoint at;
    std::uint64_t seq;
  };
  void compact_order();

  std::size_t max_;
  std::unordered_map<FlowKey, Tracked, FlowKeyHash> starts_;
  // Insertion order for eviction; entries of flows that ended since are skipped and trimmed lazily.
  std::deque<std::pair<FlowKey, std::uint64_t>> order_;
  std::uint64_t seq_ = 0;
};

}  // namespace flowd::udp_firefly
