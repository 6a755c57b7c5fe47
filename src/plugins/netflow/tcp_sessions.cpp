// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/tcp_sessions.hpp"

#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "common/net/socket_address.hpp"

namespace flowd::netflow {

std::string_view to_string(TcpRefusal r) {
  switch (r) {
    case TcpRefusal::kMaxSessions:
      return "max_sessions";
    case TcpRefusal::kPerExporter:
      return "per_exporter";
    case TcpRefusal::kEmfile:
      return "emfile";
    case TcpRefusal::kEnomem:
      return "enomem";
  }
  return "max_sessions";
}

std::string_view to_string(TcpClosure c) {
  switch (c) {
    case TcpClosure::kPeer:
      return "peer";
    case TcpClosure::kError:
      return "error";
    case TcpClosure::kOutOfSync:
      return "out_of_sync";
    case TcpClosure::kIdle:
      return "idle";
  }
  return "peer";
}

void TcpSessions::add_listener(UniqueFd fd) {
  if (!timer_)
    timer_ =
        checked_fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), "timerfd_create");
  const int raw = fd.get();
  listeners_.emplace(raw, std::move(fd));
}

void TcpSessions::watch(WorkerLoop& loop) {
  if (timer_) loop.add(timer_.get());
  if (!resting_)
    for (const auto& [fd, l] : listeners_) loop.add(fd);
}

void TcpSessions::clear() {
  sessions_.clear();
  per_exporter_.clear();
  listeners_.clear();
  timer_.reset();
  resting_ = false;
}

bool TcpSessions::is_listener(int fd) const {
  return listeners_.contains(fd);
}

bool TcpSessions::in_reserve(int fd) const {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return false;
  return static_cast<rlim_t>(fd) + static_cast<rlim_t>(limits_.descriptor_reserve) >= rl.rlim_cur;
}

TcpSessions::Accepted TcpSessions::accept(int listener, WorkerLoop& loop,
                                          const std::function<bool(const IpAddress&)>& allowed) {
  Accepted out;
  if (resting_) return out;  // a readiness reported in the same epoll batch as the failure
  net::SocketAddress from;
  from.length = sizeof from.storage;
  UniqueFd fd(::accept4(listener, from.get(), &from.length, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) {
    const int e = errno;
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) return out;  // EAGAIN, aborted
    for (const auto& [l, ignored] : listeners_) loop.remove(l);
    itimerspec its{};
    its.it_value.tv_sec = next_backoff_.count() / 1000;
    its.it_value.tv_nsec = (next_backoff_.count() % 1000) * 1'000'000;
    if (::timerfd_settime(timer_.get(), 0, &its, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "timerfd_settime");
    resting_ = true;
    out.outcome = Accepted::Outcome::kBackoff;
    out.error = e;
    out.refusal = e == EMFILE || e == ENFILE ? TcpRefusal::kEmfile : TcpRefusal::kEnomem;
    out.backoff = next_backoff_;
    next_backoff_ = std::min(next_backoff_ * 2, kMaxBackoff);
    return out;
  }
  next_backoff_ = kFirstBackoff;
  const collector::Exporter peer{from.address(), from.port()};
  out.peer = peer;
  if (!allowed(peer.address)) {
    out.outcome = Accepted::Outcome::kNotAllowed;
    return out;
  }
  out.outcome = Accepted::Outcome::kRefused;
  const AddressKey key = key_of(peer.address);
  auto slot = per_exporter_.find(key);
  if (in_reserve(fd.get())) {
    out.refusal = TcpRefusal::kEmfile;
  } else if (sessions_.size() >= limits_.max_sessions) {
    out.refusal = TcpRefusal::kMaxSessions;
  } else if (slot != per_exporter_.end() && slot->second >= limits_.max_per_exporter) {
    out.refusal = TcpRefusal::kPerExporter;
  } else {
    const int raw = fd.get();
    loop.add(raw);  // throws before the session is recorded
    auto [it, inserted] = sessions_.emplace(raw, TcpSession(std::move(fd), peer, decoder_limits_));
    ++per_exporter_[key];
    out.outcome = Accepted::Outcome::kSession;
    out.session = &it->second;
  }
  return out;
}

void TcpSessions::resume(WorkerLoop& loop) {
  std::uint64_t expirations;
  [[maybe_unused]] auto r = ::read(timer_.get(), &expirations, sizeof expirations);
  if (!resting_) return;
  resting_ = false;
  for (const auto& [fd, l] : listeners_) loop.add(fd);
}

TcpSession* TcpSessions::find(int fd) {
  auto it = sessions_.find(fd);
  return it == sessions_.end() ? nullptr : &it->second;
}

void TcpSessions::close(int fd, WorkerLoop& loop) {
  auto it = sessions_.find(fd);
  if (it == sessions_.end()) return;
  loop.remove(fd);
  auto slot = per_exporter_.find(key_of(it->second.peer().address));
  if (slot != per_exporter_.end() && --slot->second == 0) per_exporter_.erase(slot);
  sessions_.erase(it);
}

std::vector<collector::Exporter> TcpSessions::close_idle(std::chrono::steady_clock::time_point now,
                                                         WorkerLoop& loop) {
  std::vector<collector::Exporter> closed;
  if (limits_.idle_timeout.count() <= 0) return closed;
  std::vector<int> idle;
  for (const auto& [fd, s] : sessions_)
    if (now - s.last_active() >= limits_.idle_timeout) idle.push_back(fd);
  for (int fd : idle) {
    closed.push_back(sessions_.at(fd).peer());
    close(fd, loop);
  }
  return closed;
}

}  // namespace flowd::netflow
