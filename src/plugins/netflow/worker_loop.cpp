// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/worker_loop.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

#include "flowd/heartbeat.hpp"

namespace flowd::netflow {

WorkerLoop::WorkerLoop(int stop_fd, std::chrono::seconds tick)
    : stop_fd_(stop_fd),
      epoll_(checked_fd(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
      timer_(checked_fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
                        "timerfd_create")) {
  itimerspec its{};
  its.it_interval.tv_sec = its.it_value.tv_sec = tick.count();
  if (::timerfd_settime(timer_.get(), 0, &its, nullptr) != 0)
    throw std::system_error(errno, std::generic_category(), "timerfd_settime");
  add(stop_fd_);
  add(timer_.get());
}

void WorkerLoop::add(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
}

void WorkerLoop::remove(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

std::size_t WorkerLoop::wait() {
  int n;
  {
    WaitingScope waiting;
    n = ::epoll_wait(epoll_.get(), ready_.data(), static_cast<int>(ready_.size()), -1);
  }
  if (n < 0 && errno == EINTR) return 0;
  if (n < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
  return static_cast<std::size_t>(n);
}

void WorkerLoop::consume_tick() {
  std::uint64_t ticks;
  [[maybe_unused]] auto r = ::read(timer_.get(), &ticks, sizeof ticks);
}

}  // namespace flowd::netflow
