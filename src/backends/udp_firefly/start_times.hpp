// SPDX-License-Identifier: Apache-2.0
// The start time of every flow udp_firefly sends fireflies for, so that its end firefly carries the
// real start-time the schema requires. Bounded (FlowTable): beyond `max_flows` the oldest-inserted
// start is forgotten (its end firefly then carries the plugin's or the event's own time), and
// counted in overflow(). Single-threaded: the udp_firefly backend's thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/flow_table.hpp"
#include "flowd/flow_id.hpp"

namespace flowd::udp_firefly {

class StartTimes {
 public:
  explicit StartTimes(std::size_t max_flows) : starts_(max_flows) {}
  // The start-time for this event's firefly: the start we saw for this flow, else the time the
  // plugin gave, else the event's own time. A start is remembered, an end forgets.
  TimePoint on_event(const FlowID& flow, TimePoint now);
  std::size_t size() const { return starts_.size(); }
  // A reload's predecessor's starts (the flows live when it stopped), oldest first, so that their
  // end fireflies carry the start-time their start fireflies did. Into a smaller table the oldest
  // are forgotten (counted in overflow(), as any start that finds the table full).
  void take_over(const StartTimes& old);
  // The start of a flow live before this table existed (one the daemon's status lists), unless
  // this table already has one; a full table forgets its oldest, counted in overflow().
  void remember(const FlowKey& key, TimePoint start) { starts_.emplace(key, start); }
  // Starts forgotten to make room (the table was full).
  std::uint64_t overflow() const { return starts_.overflow(); }

 private:
  FlowTable<FlowKey, TimePoint, FlowKeyHash> starts_;
};

}  // namespace flowd::udp_firefly
