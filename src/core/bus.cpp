// SPDX-License-Identifier: Apache-2.0
#include "core/bus.hpp"

namespace flowd {

Bus::Bus(prometheus::Registry& metrics)
    : events_(prometheus::BuildCounter()
                  .Name("flowd_flow_events_total")
                  .Help("Flow events published by plugins, by plugin, origin (local, remote, "
                        "observed) and state")
                  .Register(metrics)),
      dropped_(prometheus::BuildCounter()
                   .Name("flowd_bus_dropped_events_total")
                   .Help("Events dropped because a backend's queue was full, by backend")
                   .Register(metrics)),
      depth_(prometheus::BuildGauge()
                 .Name("flowd_bus_queue_depth")
                 .Help("Events waiting in a backend's queue")
                 .Register(metrics)),
      subs_(std::make_shared<const std::vector<Sub>>()) {}

prometheus::Counter& Bus::events_counter(const char* plugin, FlowOrigin origin, FlowState state) {
  std::lock_guard lock(counters_mu_);
  for (auto& c : counters_)
    if (c.plugin == plugin && c.origin == origin) return *c.by_state[static_cast<int>(state)];
  EventCounters c{plugin, origin, {}};
  for (FlowState s : {FlowState::kStart, FlowState::kEnd, FlowState::kOngoing})
    c.by_state[static_cast<int>(s)] = &events_.Add({{"plugin", plugin},
                                                    {"origin", std::string(to_string(origin))},
                                                    {"state", std::string(to_string(s))}});
  counters_.push_back(c);
  return *c.by_state[static_cast<int>(state)];
}

void Bus::publish(const FlowID& flow) {
  events_counter(flow.plugin, flow.origin, flow.state).Increment();
  published_.fetch_add(1, std::memory_order_relaxed);
  auto subs = subs_.load();
  for (const auto& s : *subs) {
    if (!s.queue->push(flow)) {
      s.dropped->Increment();
      dropped_total_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

std::shared_ptr<EventQueue> Bus::make_queue(const std::string& backend, std::size_t capacity) {
  auto q = std::make_shared<EventQueue>(capacity);
  q->set_depth_gauge(&depth_.Add({{"backend", backend}}));
  dropped_.Add({{"backend", backend}});
  return q;
}

void Bus::set_subscribers(std::vector<Subscriber> subs) {
  auto v = std::make_shared<std::vector<Sub>>();
  for (auto& s : subs) v->push_back(Sub{s.queue, &dropped_.Add({{"backend", s.backend}})});
  subs_.store(std::move(v));
}

}  // namespace flowd
