// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/http_server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/stop_fd.hpp"

namespace flowd::api {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Headers, request line and chunk framing a request may add to its body before it is cut off.
constexpr std::size_t kHeaderAllowance = 64 * 1024;

void peer_of(int fd, bool local, std::string& ip, int& port) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int rc = local ? ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                 : ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  ip.clear();
  port = 0;
  if (rc != 0) return;
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    if (::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf)) ip = buf;
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf)) ip = buf;
    port = ntohs(a->sin6_port);
  }  // AF_UNIX: no address
}

// One connection, as httplib's Stream: reads through a buffer (httplib reads request lines a byte
// at a time), every wait bounded by the per-operation timeout, the request's deadline and the
// stop's eventfd, and the bytes of one request capped.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(int fd, int stop_fd, const ServerLimits& limits)
      : fd_(fd), stop_fd_(stop_fd), limits_(limits) {}

  // Waits for the first byte of the next request (keep-alive): false on timeout, stop or EOF.
  bool wait_for_request() {
    if (buffered() > 0) return true;
    return wait(POLLIN, limits_.keep_alive_timeout, false);
  }
  void begin_request() {
    deadline_ = SteadyClock::now() + limits_.request_timeout;
    budget_ = limits_.max_body + kHeaderAllowance;
  }

  bool is_readable() const override {
    return buffered() > 0 || wait(POLLIN, limits_.timeout, true);
  }
  bool is_writable() const override { return wait(POLLOUT, limits_.timeout, false); }

  ssize_t read(char* ptr, std::size_t size) override {
    if (buffered() == 0) {
      if (!wait(POLLIN, limits_.timeout, true)) return -1;
      ssize_t n;
      do {
        n = ::recv(fd_, buf_, sizeof buf_, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n < 0 ? -1 : 0;
      begin_ = 0;
      end_ = static_cast<std::size_t>(n);
    }
    std::size_t take = std::min({size, buffered(), budget_});
    if (take == 0) return -1;  // the request's byte budget is spent: cut it off
    std::memcpy(ptr, buf_ + begin_, take);
    begin_ += take;
    budget_ -= take;
    return static_cast<ssize_t>(take);
  }

  ssize_t write(const char* ptr, std::size_t size) override {
    if (!is_writable()) return -1;
    ssize_t n;
    do {
      n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    peer_of(fd_, false, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    peer_of(fd_, true, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  std::size_t buffered() const { return end_ - begin_; }

  // Polls the connection for `events` and the stop's eventfd; reads also stop at the deadline.
  bool wait(short events, std::chrono::milliseconds timeout, bool until_deadline) const {
    auto limit = SteadyClock::now() + timeout;
    if (until_deadline && deadline_ < limit) limit = deadline_;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(limit - SteadyClock::now());
      if (left.count() <= 0) return false;
      pollfd fds[2] = {{fd_, events, 0}, {stop_fd_, POLLIN, 0}};
      int n;
      {
        WaitingScope waiting;  // waiting for a client is waiting, however slow the client
        n = ::poll(fds, 2, static_cast<int>(left.count()));
      }
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || fds[1].revents) return false;
      return fds[0].revents != 0;
    }
  }

  int fd_;
  int stop_fd_;
  const ServerLimits& limits_;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  std::size_t budget_ = 0;
  char buf_[4096];
  std::size_t begin_ = 0, end_ = 0;
};

}  // namespace

HttpServer::HttpServer(const ServerLimits& limits, spdlog::logger& log)
    : limits_(limits), log_(log) {
  router_.set_payload_max_length(limits.max_body);
  // What httplib says in its Keep-Alive header; serve_connection() enforces both.
  router_.set_keep_alive_max_count(limits.keep_alive_max);
  router_.set_keep_alive_timeout(std::max<time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(limits.keep_alive_timeout).count()));
}

HttpServer::~HttpServer() {
  for (int fd : pending_) ::close(fd);
}

void HttpServer::add_listener(UniqueFd fd, std::string name) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  bool tcp = ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
  listeners_.push_back({std::move(fd), std::move(name), tcp});
}

void HttpServer::serve(std::stop_token stop, HeartbeatBoard* board, const std::string& who) {
  StopFd stopfd(stop);
  stop_fd_ = stopfd.fd();
  std::stop_callback wake(stop, [this] { cv_.notify_all(); });
  std::vector<std::jthread> workers;
  for (std::size_t i = 0; i < limits_.threads; ++i) {
    std::shared_ptr<Heartbeat> hb =
        board ? board->add(fmt::format("{} worker {}", who, i + 1)) : nullptr;
    workers.emplace_back([this, hb, stop] {
      bind_thread_heartbeat(hb.get());
      worker(stop);
      bind_thread_heartbeat(nullptr);
    });
  }
  std::vector<pollfd> fds;
  while (!stop.stop_requested()) {
    {
      // A full queue: accept nothing until a worker takes a connection (clients wait in the
      // kernel's backlog meanwhile).
      std::unique_lock lock(mu_);
      WaitingScope waiting;
      cv_.wait(lock, stop, [this] { return pending_.size() < limits_.queue; });
    }
    if (stop.stop_requested()) break;
    fds.clear();
    for (auto& l : listeners_) fds.push_back({l.fd.get(), POLLIN, 0});
    fds.push_back({stopfd.fd(), POLLIN, 0});
    int n;
    {
      WaitingScope waiting;
      n = ::poll(fds.data(), fds.size(), -1);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll on the api's listeners");
    }
    if (fds.back().revents) break;
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      if (fds[i].revents) accept_ready(listeners_[i], stop);
  }
  cv_.notify_all();
  workers.clear();  // joins: each ends its connection at once (its waits poll the stop's eventfd)
  std::lock_guard lock(mu_);
  for (int fd : pending_) ::close(fd);
  pending_.clear();
}

void HttpServer::accept_ready(Listener& l, std::stop_token& stop) {
  static LogLimiter limiter;
  while (!stop.stop_requested()) {
    {
      std::lock_guard lock(mu_);
      if (pending_.size() >= limits_.queue) return;
    }
    int fd = ::accept4(l.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: leave the connection in the backlog rather than spin on it, until a
        // worker closed one (or a second passed: the descriptors may be another thread's).
        limited_warn(log_, limiter, "{}: cannot accept a connection: {}", l.name,
                     std::strerror(errno));
        std::unique_lock lock(mu_);
        const auto seen = closed_;
        WaitingScope waiting;
        cv_.wait_for(lock, stop, std::chrono::seconds(1), [&] { return closed_ != seen; });
        return;
      }
      throw std::system_error(errno, std::generic_category(), "accept on " + l.name);
    }
    if (l.tcp) {
      // httplib writes a response's head and body in separate send()s: with Nagle's algorithm the
      // body waits for the client's delayed ACK of the head, 40 ms per request on Linux.
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    {
      std::lock_guard lock(mu_);
      pending_.push_back(fd);
    }
    cv_.notify_all();
  }
}

void HttpServer::worker(std::stop_token stop) {
  while (true) {
    int fd = -1;
    {
      std::unique_lock lock(mu_);
      WaitingScope waiting;
      if (!cv_.wait(lock, stop, [this] { return !pending_.empty(); })) return;
      fd = pending_.front();
      pending_.pop_front();
    }
    cv_.notify_all();  // the acceptor may wait for room in the queue
    serve_connection(fd, stop_fd_);
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    {
      std::lock_guard lock(mu_);
      ++closed_;
    }
    cv_.notify_all();
  }
}

void HttpServer::serve_connection(int fd, int stop_fd) {
  ConnectionStream stream(fd, stop_fd, limits_);
  for (std::size_t served = 0; served < limits_.keep_alive_max; ++served) {
    if (!stream.wait_for_request()) return;
    stream.begin_request();
    bool closed = false;
    const bool last = served + 1 == limits_.keep_alive_max;
    if (!router_.process_request(stream, last, closed, nullptr) || closed) return;
  }
}

}  // namespace flowd::api
