// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/http_server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
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

// How long, and how many bytes, a connection flowd ends is read for requests it will not execute
// (close_connection()).
constexpr std::chrono::seconds kLinger{2};
constexpr std::size_t kLingerBytes = 1 << 20;

// Whether the client asks for the connection to stay open after this request (RFC 9112 §9.3):
// the Connection header's comma-separated tokens, case-insensitive, in every Connection field.
bool wants_persistence(const httplib::Request& req) {
  bool close = false, keep_alive = false;
  auto [from, to] = req.headers.equal_range("Connection");
  for (auto it = from; it != to; ++it) {
    std::string_view v = it->second;
    while (!v.empty()) {
      auto comma = v.find(',');
      auto token = v.substr(0, comma);
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      auto is = [&](std::string_view word) {
        return token.size() == word.size() &&
               std::equal(token.begin(), token.end(), word.begin(), [](char a, char b) {
                 return std::tolower(static_cast<unsigned char>(a)) == b;
               });
      };
      if (is("close")) close = true;
      if (is("keep-alive")) keep_alive = true;
    }
  }
  if (close) return false;
  if (req.version == "HTTP/1.1") return true;
  return req.version == "HTTP/1.0" && keep_alive;
}

// Where serve_connection() leaves, for the pre-routing handler, why a request's framing is refused.
constexpr const char* kFramingHeader = "X-Flowd-Framing-Error";

// Why the length of a request's body is ambiguous, or "" (RFC 9112 §6.1, §6.3): two Content-Length
// fields, or Content-Length beside Transfer-Encoding. Such a request is answered 400 and the
// connection closed, never read on: two parsers of one byte stream must not disagree on where the
// next request starts (request smuggling).
std::string framing_problem(const httplib::Request& req) {
  const auto lengths = req.headers.count("Content-Length");
  if (lengths > 1) return "more than one Content-Length field (RFC 9112 section 6.3)";
  if (lengths == 1 && req.headers.count("Transfer-Encoding") > 0)
    return "both Transfer-Encoding and Content-Length (RFC 9112 section 6.1)";
  return {};
}

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

  // Bytes received and not read by a request yet, here or in the socket (pipelined requests).
  bool unread() const {
    if (buffered() > 0) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
  }

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
  room_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!room_fd_) throw std::system_error(errno, std::generic_category(), "eventfd for the api");
  router_.set_payload_max_length(limits.max_body);
  // What httplib says in its Keep-Alive header; serve_connection() enforces both.
  router_.set_keep_alive_max_count(limits.keep_alive_max);
  router_.set_keep_alive_timeout(std::max<time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(limits.keep_alive_timeout).count()));
  // An HTTP/1.0 client keeps the connection only when the answer says so (RFC 9112 §9.3);
  // serve_connection() left "keep-alive" in the request's Connection exactly when it persists.
  router_.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (const auto why = req.get_header_value(kFramingHeader); !why.empty()) {
      res.status = 400;
      res.set_content(fmt::format("{{\"error\": \"{}\", \"reason\": \"http\"}}\n", why),
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.version == "HTTP/1.0" && req.get_header_value("Connection") == "keep-alive")
      res.set_header("Connection", "keep-alive");
    return httplib::Server::HandlerResponse::Unhandled;
  });
}

HttpServer::~HttpServer() {
  for (auto& l : listeners_)
    for (int fd : l->pending) ::close(fd);
}

void HttpServer::add_listener(UniqueFd fd, std::string name) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  bool tcp = ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
  auto l = std::make_unique<Listener>();
  l->fd = std::move(fd);
  l->name = std::move(name);
  l->tcp = tcp;
  listeners_.push_back(std::move(l));
}

void HttpServer::serve(std::stop_token stop, HeartbeatBoard* board, const std::string& who) {
  StopFd stopfd(stop);
  stop_fd_ = stopfd.fd();
  std::stop_callback wake(stop, [this] { cv_.notify_all(); });
  std::vector<std::jthread> workers;
  for (std::size_t n = 0; n < listeners_.size(); ++n) {
    Listener& l = *listeners_[n];
    for (std::size_t i = 0; i < limits_.threads; ++i) {
      std::shared_ptr<Heartbeat> hb =
          board ? board->add(n == 0 ? fmt::format("{} worker {}", who, i + 1)
                                    : fmt::format("{} worker {} (listener {})", who, i + 1, n + 1))
                : nullptr;
      workers.emplace_back([this, hb, stop, &l] {
        bind_thread_heartbeat(hb.get());
        worker(stop, l);
        bind_thread_heartbeat(nullptr);
      });
    }
  }
  std::vector<pollfd> fds;
  std::vector<Listener*> polled;
  while (!stop.stop_requested()) {
    // A listener whose queue is full is not polled (its clients wait in the kernel's backlog)
    // until one of its workers takes a connection and says so on room_fd_; the others go on.
    fds.clear();
    polled.clear();
    {
      std::lock_guard lock(mu_);
      for (auto& l : listeners_)
        if (l->pending.size() < limits_.queue) {
          fds.push_back({l->fd.get(), POLLIN, 0});
          polled.push_back(l.get());
        }
    }
    fds.push_back({room_fd_.get(), POLLIN, 0});
    if (timer_fd_ >= 0) fds.push_back({timer_fd_, POLLIN, 0});
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
    const std::size_t room = polled.size();
    if (fds[room].revents) {
      std::uint64_t count = 0;
      [[maybe_unused]] auto r = ::read(room_fd_.get(), &count, sizeof count);
    }
    if (timer_fd_ >= 0 && fds[room + 1].revents) on_timer_();
    for (std::size_t i = 0; i < polled.size(); ++i)
      if (fds[i].revents) accept_ready(*polled[i], stop);
  }
  cv_.notify_all();
  workers.clear();  // joins: each ends its connection at once (its waits poll the stop's eventfd)
  std::lock_guard lock(mu_);
  for (auto& l : listeners_) {
    for (int fd : l->pending) ::close(fd);
    l->pending.clear();
  }
}

void HttpServer::accept_ready(Listener& l, std::stop_token& stop) {
  static LogLimiter limiter;
  while (!stop.stop_requested()) {
    {
      std::lock_guard lock(mu_);
      if (l.pending.size() >= limits_.queue) return;
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
      l.pending.push_back(fd);
    }
    cv_.notify_all();
  }
}

void HttpServer::worker(std::stop_token stop, Listener& l) {
  while (true) {
    int fd = -1;
    bool was_full = false;
    {
      std::unique_lock lock(mu_);
      WaitingScope waiting;
      if (!cv_.wait(lock, stop, [&l] { return !l.pending.empty(); })) return;
      was_full = l.pending.size() >= limits_.queue;
      fd = l.pending.front();
      l.pending.pop_front();
    }
    if (was_full) {
      // The acceptor stopped polling this listener: there is room again.
      const std::uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(room_fd_.get(), &one, sizeof one);
    }
    close_connection(fd, serve_connection(fd, stop_fd_));
    {
      std::lock_guard lock(mu_);
      ++closed_;
    }
    cv_.notify_all();
  }
}

bool HttpServer::serve_connection(int fd, int stop_fd) {
  ConnectionStream stream(fd, stop_fd, limits_);
  for (std::size_t served = 0; served < limits_.keep_alive_max; ++served) {
    if (!stream.wait_for_request()) return false;  // idle past keep_alive_timeout, stop or EOF
    stream.begin_request();
    const bool last = served + 1 == limits_.keep_alive_max;
    bool parsed = false, persist = false, httplib_closed = false;
    // Called once the request line and headers are parsed, before the route runs: flowd's
    // decision replaces httplib's, and the Connection it leaves is what httplib answers by.
    auto decide = [&](httplib::Request& req) {
      parsed = true;
      const auto framing = framing_problem(req);
      persist = framing.empty() && !last && wants_persistence(req);
      req.headers.erase("Connection");
      req.headers.emplace("Connection", persist ? "keep-alive" : "close");
      req.headers.erase(kFramingHeader);  // only flowd says this
      if (!framing.empty()) {
        req.headers.emplace(kFramingHeader, framing);
      } else if (req.headers.count("Content-Length") == 0 &&
                 req.headers.count("Transfer-Encoding") == 0) {
        // No length and not chunked: the body is empty (RFC 9112 §6.3), not "until the peer
        // closes", which httplib would wait for until the read timeout.
        req.headers.emplace("Content-Length", "0");
      }
    };
    // false: EOF before a request line, or the answer could not be written.
    if (!router_.process_request(stream, last, httplib_closed, decide)) return false;
    // A request that could not be parsed leaves the stream at an unknown place: end there.
    if (!parsed || !persist) return stream.unread();
  }
  return stream.unread();
}

void HttpServer::close_connection(int fd, bool unread) {
  ::shutdown(fd, SHUT_WR);  // the client sees the end of the answers
  if (unread) {
    // Closing with unread bytes makes the kernel send a reset, which may reach the client before
    // it has read the answers: read and drop them until the client closes, for a moment.
    const auto until = SteadyClock::now() + kLinger;
    std::size_t dropped = 0;
    char buf[4096];
    while (dropped < kLingerBytes) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - SteadyClock::now());
      if (left.count() <= 0) break;
      pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      int n;
      {
        WaitingScope waiting;
        n = ::poll(fds, 2, static_cast<int>(left.count()));
      }
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || fds[1].revents) break;
      ssize_t got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got <= 0) break;
      dropped += static_cast<std::size_t>(got);
    }
  }
  ::close(fd);
}

}  // namespace flowd::api
