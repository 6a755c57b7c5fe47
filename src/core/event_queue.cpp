// SPDX-License-Identifier: Apache-2.0
#include "flowd/event_queue.hpp"

#include <prometheus/gauge.h>

#include "flowd/component.hpp"
#include "flowd/heartbeat.hpp"

namespace flowd {

bool EventQueue::push(const FlowID& f) {
  {
    std::lock_guard lock(mu_);
    if (closed_ || items_.size() >= capacity_) return false;
    items_.push_back(f);
    if (depth_) depth_->Set(static_cast<double>(items_.size()));
  }
  cv_.notify_one();
  return true;
}

bool EventQueue::pop_batch(std::vector<FlowID>& out, std::size_t max, std::stop_token stop) {
  out.clear();
  std::unique_lock lock(mu_);
  {
    WaitingScope waiting;
    cv_.wait(lock, stop, [&] { return !items_.empty() || closed_; });
  }
  if (items_.empty()) return false;
  while (!items_.empty() && out.size() < max) {
    out.push_back(items_.front());
    items_.pop_front();
  }
  if (depth_) depth_->Set(static_cast<double>(items_.size()));
  return true;
}

bool EventQueue::pop_batch_until(std::vector<FlowID>& out, std::size_t max, std::stop_token stop,
                                 std::chrono::steady_clock::time_point deadline) {
  out.clear();
  std::unique_lock lock(mu_);
  {
    WaitingScope waiting;
    cv_.wait_until(lock, stop, deadline, [&] { return !items_.empty() || closed_; });
  }
  if (items_.empty()) return !closed_ && !stop.stop_requested();
  while (!items_.empty() && out.size() < max) {
    out.push_back(items_.front());
    items_.pop_front();
  }
  if (depth_) depth_->Set(static_cast<double>(items_.size()));
  return true;
}

void EventQueue::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
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
