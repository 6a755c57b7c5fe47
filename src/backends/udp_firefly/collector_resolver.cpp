// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/collector_resolver.hpp"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <sys/socket.h>

#include <algorithm>
#include <stdexcept>

namespace flowd::udp_firefly {

bool same_destination(const net::SocketAddress& a, const net::SocketAddress& b) {
  return a.port() == b.port() && a.address() == b.address();
}

CollectorResolver::CollectorResolver(std::vector<net::Endpoint> collectors,
                                     std::chrono::milliseconds interval,
                                     std::vector<prometheus::Counter*> failures,
                                     std::shared_ptr<spdlog::logger> log)
    : collectors_(std::move(collectors)),
      interval_(interval),
      failures_(std::move(failures)),
      log_(std::move(log)),
      addresses_(collectors_.size()),
      requested_(collectors_.size(), false),
      last_(collectors_.size()) {
  for (std::size_t i = 0; i < collectors_.size(); ++i)
    warn_limiters_.push_back(std::make_unique<LogLimiter>(1, kWarnInterval));
}

void CollectorResolver::resolve_all_now() {
  for (std::size_t i = 0; i < collectors_.size(); ++i) lookup(i);
}

void CollectorResolver::start(HeartbeatBoard* heartbeats, const std::string& who) {
  if (collectors_.empty() || thread_.joinable()) return;
  auto hb = heartbeats ? heartbeats->add(who) : nullptr;
  thread_ = std::jthread(
      [this, hb = std::move(hb)](std::stop_token stop) mutable { loop(stop, std::move(hb)); });
}

void CollectorResolver::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

void CollectorResolver::request(std::size_t i) {
  std::lock_guard lock(mu_);
  if (i >= requested_.size() || requested_[i]) return;
  requested_[i] = true;
  poked_ = true;
  wake_.notify_one();
}

bool CollectorResolver::changed(std::uint64_t& generation,
                                std::vector<std::optional<net::SocketAddress>>& out) {
  if (generation_.load(std::memory_order_acquire) == generation) return false;
  std::lock_guard lock(mu_);
  out = addresses_;
  generation = generation_.load(std::memory_order_relaxed);
  return true;
}

void CollectorResolver::lookup(std::size_t i) {
  const net::Endpoint& ep = collectors_[i];
  {
    std::lock_guard lock(mu_);
    last_[i] = std::chrono::steady_clock::now();
    requested_[i] = false;
  }
  std::vector<net::SocketAddress> found;
  try {
    // The thread waits for the network here, not for work it failed to do: not a stall.
    WaitingScope waiting;
    found = net::resolve(ep.host, ep.port);
  } catch (const std::runtime_error& e) {
    if (i < failures_.size() && failures_[i]) failures_[i]->Increment();
    std::lock_guard lock(mu_);
    // The last address found stays in use: a DNS outage must not stop the fireflies.
    limited_warn(*log_, *warn_limiters_[i], "collector {}: {}; {}", ep.to_string(), e.what(),
                 addresses_[i] ? "keeping " + addresses_[i]->to_string() : "will retry");
    return;
  }
  // ::ffff:192.0.2.1 is 192.0.2.1: sent from the IPv4 socket, and found equal to it below.
  for (auto& a : found)
    if (a.family() == AF_INET6 && a.address().is_v4())
      a = net::SocketAddress::of(a.address(), a.port());
  std::lock_guard lock(mu_);
  const auto& current = addresses_[i];
  // A name with several addresses keeps the one in use while it is still among them (round-robin
  // DNS does not move the fireflies on every lookup).
  if (current && std::any_of(found.begin(), found.end(), [&](const net::SocketAddress& a) {
        return a.to_string() == current->to_string();
      }))
    return;
  // Another collector at the same address (two names of one host): the sender sends there once,
  // for the first of them in the configuration.
  std::string shared;
  for (std::size_t j = 0; j < collectors_.size(); ++j)
    if (j != i && addresses_[j] && same_destination(*addresses_[j], found.front())) {
      shared = fmt::format("; the same address as collector {}: each firefly goes there once",
                           collectors_[j].to_string());
      break;
    }
  log_->info("collector {}: sending to {}{}{}", ep.to_string(), found.front().to_string(),
             current ? " (was " + current->to_string() + ")" : "", shared);
  addresses_[i] = found.front();
  generation_.fetch_add(1, std::memory_order_release);
}

void CollectorResolver::loop(std::stop_token stop, std::shared_ptr<Heartbeat> hb) {
  bind_thread_heartbeat(hb.get());
  using Clock = std::chrono::steady_clock;
  auto next_round = Clock::now() + interval_;
  std::vector<std::size_t> due;
  while (!stop.stop_requested()) {
    due.clear();
    {
      std::unique_lock lock(mu_);
      const auto now = Clock::now();
      if (now >= next_round) {
        for (std::size_t i = 0; i < collectors_.size(); ++i) due.push_back(i);
        next_round = now + interval_;
      } else {
        // Requests whose gap has passed are due now; the others set when to look again.
        auto wake_at = next_round;
        for (std::size_t i = 0; i < collectors_.size(); ++i) {
          if (!requested_[i]) continue;
          const auto allowed = last_[i] + kMinGap;
          if (allowed <= now)
            due.push_back(i);
          else
            wake_at = std::min(wake_at, allowed);
        }
        if (due.empty()) {
          poked_ = false;
          WaitingScope waiting;
          wake_.wait_until(lock, stop, wake_at, [this] { return poked_; });
          continue;
        }
      }
    }
    for (std::size_t i : due) {
      if (stop.stop_requested()) break;
      lookup(i);
    }
  }
  bind_thread_heartbeat(nullptr);
}

}  // namespace flowd::udp_firefly
