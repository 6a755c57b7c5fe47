// SPDX-License-Identifier: Apache-2.0
#include "flowd/heartbeat.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace flowd {
namespace {

thread_local Heartbeat* bound = nullptr;

std::int64_t ticks(std::chrono::steady_clock::time_point t) {
  return t.time_since_epoch().count();
}

}  // namespace

Heartbeat::Heartbeat(std::string who)
    : who_(std::move(who)), busy_since_(ticks(std::chrono::steady_clock::now())) {}

void Heartbeat::enter_wait() noexcept {
  busy_since_.store(kWaiting, std::memory_order_relaxed);
}

void Heartbeat::leave_wait() noexcept {
  busy_since_.store(ticks(std::chrono::steady_clock::now()), std::memory_order_relaxed);
}

std::chrono::steady_clock::duration Heartbeat::busy_for(
    std::chrono::steady_clock::time_point now) const {
  const auto since = busy_since_.load(std::memory_order_relaxed);
  if (since == kWaiting) return {};
  return std::max(std::chrono::steady_clock::duration{},
                  now.time_since_epoch() - std::chrono::steady_clock::duration(since));
}

std::shared_ptr<Heartbeat> HeartbeatBoard::add(std::string who) {
  auto hb = std::make_shared<Heartbeat>(std::move(who));
  std::lock_guard lock(mu_);
  std::erase_if(beats_, [](const auto& w) { return w.expired(); });
  beats_.push_back(hb);
  return hb;
}

std::vector<std::string> HeartbeatBoard::stalled(std::chrono::steady_clock::duration limit) const {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> out;
  std::lock_guard lock(mu_);
  std::erase_if(beats_, [](const auto& w) { return w.expired(); });
  for (const auto& w : beats_)
    if (auto hb = w.lock())
      if (auto busy = hb->busy_for(now); busy > limit)
        out.push_back(fmt::format("{} ({} s)", hb->who(),
                                  std::chrono::duration_cast<std::chrono::seconds>(busy).count()));
  return out;
}

void bind_thread_heartbeat(Heartbeat* hb) noexcept {
  bound = hb;
}
Heartbeat* thread_heartbeat() noexcept {
  return bound;
}

}  // namespace flowd
