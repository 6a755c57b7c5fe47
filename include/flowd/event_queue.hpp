// SPDX-License-Identifier: Apache-2.0
// A bounded multi-producer, single-consumer queue of FlowIDs: one per backend. A full queue
// refuses the event (the bus counts the drop); nothing blocks a plugin.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <stop_token>
#include <vector>

#include "flowd/flow_id.hpp"

namespace prometheus {
class Gauge;
}

namespace flowd {

class EventQueue {
 public:
  explicit EventQueue(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}

  // False when the queue is full or closed: the caller counts the drop.
  bool push(const FlowID& f);
  // Appends as many of `flows` as fit, in order, and wakes the consumer once: the first N are
  // queued, the rest refused (the caller counts them). Each queued copy gets `plugin` as its
  // FlowID::plugin unless that is null. Returns N (0 when closed).
  std::size_t push_batch(std::span<const FlowID> flows, const char* plugin = nullptr);
  // Moves up to `max` events into `out` (cleared first). Waits while empty. Returns false once
  // the queue is closed and drained, or `stop` is requested.
  bool pop_batch(std::vector<FlowID>& out, std::size_t max, std::stop_token stop);
  // As pop_batch, but also returns true (with `out` possibly empty) once `deadline` has passed.
  bool pop_batch_until(std::vector<FlowID>& out, std::size_t max, std::stop_token stop,
                       std::chrono::steady_clock::time_point deadline);
  // Waits until the queue has room for one event at least (the consumer took some); false when it
  // is closed, or `stop` is requested or `deadline` passes first. Only for a producer that may
  // wait (the recovered flows at a start, Bus::publish_recovered_ends): a plugin never waits.
  bool wait_for_room(std::stop_token stop, std::chrono::steady_clock::time_point deadline);
  // How many events the queue ever accepted: the position after the last one pushed.
  std::uint64_t pushed() const;
  // Waits until the consumer has processed every event up to `position` (a pushed() value): it
  // came back for more after taking them (each pop marks the batches taken before it as done).
  // False when `stop` is requested or `deadline` passes first. For the recovered flows at a start,
  // whose journal lines wait until the backends have sent them (Bus::publish_recovered_ends).
  bool wait_until_processed(std::uint64_t position, std::stop_token stop,
                            std::chrono::steady_clock::time_point deadline);
  // The position up to which the consumer has processed (see wait_until_processed).
  std::uint64_t processed() const;
  // Called by the consumer's thread, outside the queue's lock, each time processed() advances
  // (the bus writes then the flow journal's end lines its backends have sent). Set before the
  // consumer runs.
  void set_progress_hook(std::function<void()> hook) { progress_ = std::move(hook); }
  // No more pushes; the consumer drains what is left, then pop_batch returns false.
  void close();
  std::size_t size() const;
  bool closed() const;
  std::size_t capacity() const { return capacity_; }
  // Kept equal to size() after every push and pop (flowd_bus_queue_depth).
  void set_depth_gauge(prometheus::Gauge* g) { depth_ = g; }

 private:
  // Moves up to `max` events into `out` and unlocks `lock` (of mu_), waking a producer waiting for
  // room.
  void take(std::vector<FlowID>& out, std::size_t max, std::unique_lock<std::mutex>& lock);
  // At each pop's entry (`lock` of mu_ held): the consumer is done with what it took before; the
  // progress hook is called (the lock let go meanwhile) when that is more than before.
  void mark_processed(std::unique_lock<std::mutex>& lock);

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<FlowID> items_;
  bool closed_ = false;
  // The consumer sleeps in a wait: only then does a push pay for a notification (which takes the
  // condition variable's own lock even when nobody waits).
  bool consumer_waiting_ = false;
  // The same for a producer waiting for room: a pop notifies only when one does.
  std::condition_variable_any room_cv_;
  std::size_t producers_waiting_ = 0;
  // Events accepted, taken by the consumer, and processed (taken before its latest pop) in all.
  std::uint64_t pushed_ = 0, taken_ = 0, processed_ = 0;
  prometheus::Gauge* depth_ = nullptr;
  std::function<void()> progress_;
};

}  // namespace flowd
