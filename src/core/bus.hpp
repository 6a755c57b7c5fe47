// SPDX-License-Identifier: Apache-2.0
// The event bus: every event from any plugin is copied into every backend's bounded queue.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "flowd/component.hpp"
#include "flowd/event_queue.hpp"

namespace flowd {

class Bus final : public Publisher {
 public:
  struct Subscriber {
    std::string backend;
    std::shared_ptr<EventQueue> queue;
  };

  explicit Bus(prometheus::Registry& metrics);
  void publish(const FlowID& flow) override;
  // Swapped atomically: publishers never wait for a reload.
  void set_subscribers(std::vector<Subscriber> subs);
  std::shared_ptr<EventQueue> make_queue(const std::string& backend, std::size_t capacity);
  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const { return dropped_total_.load(std::memory_order_relaxed); }

 private:
  struct Sub {
    std::shared_ptr<EventQueue> queue;
    prometheus::Counter* dropped;
  };
  prometheus::Counter& events_counter(const char* plugin, FlowOrigin origin, FlowState state);

  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Family<prometheus::Gauge>& depth_;
  std::atomic<std::shared_ptr<const std::vector<Sub>>> subs_;
  // Per (plugin, origin, state) counters, looked up by the plugin name pointer (names are static).
  // Each plugin has one origin, so the origin label adds no series, only the means to sum by it.
  struct EventCounters {
    const char* plugin;
    FlowOrigin origin;
    prometheus::Counter* by_state[3];
  };
  std::mutex counters_mu_;
  std::vector<EventCounters> counters_;
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> dropped_total_{0};
};

}  // namespace flowd
