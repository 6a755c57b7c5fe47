// SPDX-License-Identifier: Apache-2.0
// Liveness of worker threads, for the supervisor's systemd watchdog. A worker is making progress
// while it waits for work (poll, epoll_wait, a queue) or has been out of that wait for less than
// the stall limit; a worker stuck in a blocking write, a lock or a loop is not, and then the
// supervisor stops sending WATCHDOG=1. No periodic wake-ups are needed: an idle worker is healthy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace flowd {

class Heartbeat {
 public:
  // `who`: how logs and STATUS= name the thread ("plugin.netflow", "plugin.netflow worker 1").
  // A new heartbeat counts as busy from now: the thread is starting.
  explicit Heartbeat(std::string who);
  const std::string& who() const { return who_; }
  // The thread enters its wait for work; until leave_wait() it counts as healthy however long it
  // waits.
  void enter_wait() noexcept;
  // The thread left its wait (or made progress in a long busy stretch): the stall clock restarts
  // now.
  void leave_wait() noexcept;
  // How long the thread has been busy at `now`; zero while it waits.
  std::chrono::steady_clock::duration busy_for(std::chrono::steady_clock::time_point now) const;

 private:
  std::string who_;
  // steady_clock ticks since its epoch at the last leave_wait(), or kWaiting.
  std::atomic<std::int64_t> busy_since_;
  static constexpr std::int64_t kWaiting = -1;
};

// The heartbeats the supervisor checks. Thread-safe; holds them weakly, so a heartbeat leaves the
// board when its last owner (the thread's runner) drops it.
class HeartbeatBoard {
 public:
  std::shared_ptr<Heartbeat> add(std::string who);
  // Names of the threads busy for longer than `limit` (with how long, "who (12 s)"); empty when all
  // make progress.
  std::vector<std::string> stalled(std::chrono::steady_clock::duration limit) const;

 private:
  mutable std::mutex mu_;
  mutable std::vector<std::weak_ptr<Heartbeat>> beats_;
};

// Binds `hb` to the calling thread (nullptr unbinds), so that WaitingScope finds it without
// plumbing. The runtime binds each component thread's heartbeat before calling run().
void bind_thread_heartbeat(Heartbeat* hb) noexcept;
Heartbeat* thread_heartbeat() noexcept;

// Marks the calling thread as waiting for work for the scope's lifetime: wrap each blocking wait of
// a worker loop (poll, epoll_wait, a condition variable) in one. Does nothing on a thread without a
// heartbeat (unit tests, CLI tools).
class WaitingScope {
 public:
  WaitingScope() noexcept : hb_(thread_heartbeat()) {
    if (hb_) hb_->enter_wait();
  }
  ~WaitingScope() {
    if (hb_) hb_->leave_wait();
  }
  WaitingScope(const WaitingScope&) = delete;
  WaitingScope& operator=(const WaitingScope&) = delete;

 private:
  Heartbeat* hb_;
};

}  // namespace flowd
