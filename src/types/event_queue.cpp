// SPDX-License-Identifier: Apache-2.0
#include "flowd/event_queue.hpp"

#include <prometheus/gauge.h>

#include <algorithm>
#include <utility>

#include "flowd/component.hpp"
#include "flowd/heartbeat.hpp"

namespace flowd {

bool EventQueue::push(const FlowID& f) {
  return push_batch(std::span<const FlowID>(&f, 1)) == 1;
}

std::size_t EventQueue::push_batch(std::span<const FlowID> flows, const char* plugin) {
  std::size_t taken = 0;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (closed_) return 0;
    taken = std::min(flows.size(), capacity_ - items_.size());
    for (std::size_t i = 0; i < taken; ++i) {
      items_.push_back(flows[i]);
      if (plugin) items_.back().plugin = plugin;
    }
    pushed_ += taken;
    if (taken && depth_) depth_->Set(static_cast<double>(items_.size()));
    wake = taken && consumer_waiting_;
  }
  if (wake) cv_.notify_one();
  return taken;
}

bool EventQueue::pop_batch(std::vector<FlowID>& out, std::size_t max, std::stop_token stop) {
  out.clear();
  std::unique_lock lock(mu_);
  mark_processed(lock);
  {
    // Entered on every pop, even a non-empty queue: leaving the wait is this thread's heartbeat.
    WaitingScope waiting;
    consumer_waiting_ = true;
    cv_.wait(lock, stop, [&] { return !items_.empty() || closed_; });
    consumer_waiting_ = false;
  }
  if (items_.empty()) return false;
  take(out, max, lock);
  return true;
}

bool EventQueue::pop_batch_until(std::vector<FlowID>& out, std::size_t max, std::stop_token stop,
                                 std::chrono::steady_clock::time_point deadline) {
  out.clear();
  std::unique_lock lock(mu_);
  mark_processed(lock);
  {
    // Entered on every pop, even a non-empty queue: leaving the wait is this thread's heartbeat.
    WaitingScope waiting;
    consumer_waiting_ = true;
    cv_.wait_until(lock, stop, deadline, [&] { return !items_.empty() || closed_; });
    consumer_waiting_ = false;
  }
  if (items_.empty()) return !closed_ && !stop.stop_requested();
  take(out, max, lock);
  return true;
}

void EventQueue::mark_processed(std::unique_lock<std::mutex>& lock) {
  if (processed_ == taken_) return;
  processed_ = taken_;
  // Whoever waits for room or for processing is woken (one condition variable for both: the
  // producers that wait are the start's recovery, never a plugin).
  if (producers_waiting_) room_cv_.notify_all();
  if (!progress_) return;
  lock.unlock();
  progress_();
  lock.lock();
}

void EventQueue::take(std::vector<FlowID>& out, std::size_t max,
                      std::unique_lock<std::mutex>& lock) {
  while (!items_.empty() && out.size() < max) {
    out.push_back(std::move(items_.front()));
    items_.pop_front();
    ++taken_;
  }
  if (depth_) depth_->Set(static_cast<double>(items_.size()));
  const bool wake = producers_waiting_ > 0;
  lock.unlock();
  if (wake) room_cv_.notify_all();
}

bool EventQueue::wait_for_room(std::stop_token stop,
                               std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  ++producers_waiting_;
  room_cv_.wait_until(lock, stop, deadline, [&] { return items_.size() < capacity_ || closed_; });
  --producers_waiting_;
  return !closed_ && items_.size() < capacity_;
}

std::uint64_t EventQueue::pushed() const {
  std::lock_guard lock(mu_);
  return pushed_;
}

std::uint64_t EventQueue::processed() const {
  std::lock_guard lock(mu_);
  return processed_;
}

bool EventQueue::wait_until_processed(std::uint64_t position, std::stop_token stop,
                                      std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  ++producers_waiting_;
  room_cv_.wait_until(lock, stop, deadline, [&] { return processed_ >= position; });
  --producers_waiting_;
  return processed_ >= position;
}

void EventQueue::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
  room_cv_.notify_all();
}

bool EventQueue::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::size_t EventQueue::size() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

void Backend::run(std::stop_token stop, EventQueue& in) {
  std::vector<FlowID> batch;
  batch.reserve(256);
  while (in.pop_batch(batch, 256, stop)) {
    for (const auto& f : batch) handle(f);
  }
}

}  // namespace flowd
