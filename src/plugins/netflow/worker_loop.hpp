// SPDX-License-Identifier: Apache-2.0
// The wait of one receive worker: an epoll set (level-triggered) over its stop descriptor, a
// periodic timer (idle flows, template lifetimes, dump flushes) and its sockets.
#pragma once

#include <sys/epoll.h>

#include <array>
#include <chrono>
#include <cstddef>

#include "common/unique_fd.hpp"

namespace flowd::netflow {

class WorkerLoop {
 public:
  // Throws std::system_error when epoll_create1, timerfd_create or timerfd_settime fail (EMFILE,
  // ENFILE, ENOMEM): a worker that cannot wait must fail, not spin.
  WorkerLoop(int stop_fd, std::chrono::seconds tick);

  // Watches `fd` for input; throws std::system_error when epoll_ctl fails.
  void add(int fd);
  // Stops watching `fd` (before it is closed).
  void remove(int fd);

  // Waits for the next events (as "waiting" for the thread's heartbeat), then calls on_tick() when
  // the timer fired and on_ready(fd) for each ready socket. Returns false once the stop descriptor
  // is readable. Throws std::system_error when epoll_wait fails other than by EINTR.
  template <class OnTick, class OnReady>
  bool run_once(OnTick&& on_tick, OnReady&& on_ready) {
    const std::size_t n = wait();
    for (std::size_t i = 0; i < n; ++i) {
      const int fd = ready_[i].data.fd;
      if (fd == stop_fd_) return false;
      if (fd == timer_.get()) {
        consume_tick();
        on_tick();
      } else {
        on_ready(fd);
      }
    }
    return true;
  }

 private:
  std::size_t wait();
  void consume_tick();

  int stop_fd_;
  UniqueFd epoll_;
  UniqueFd timer_;
  std::array<epoll_event, 32> ready_{};
};

}  // namespace flowd::netflow
