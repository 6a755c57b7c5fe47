// SPDX-License-Identifier: Apache-2.0
// The HTTP server of the api plugin: cpp-httplib parses requests and writes responses (its
// Server holds the routes), while connections are accepted and served here, so that every bound
// is flowd's: each listener has its own fixed pool of worker threads and its own bounded queue of
// accepted connections (a full queue stops accepting on that listener only; connections wait in
// the kernel's backlog), so slow TCP clients never hold a thread a unix-socket client needs; a
// timeout per read or write, a deadline for a whole request from its first byte and a cap on the
// bytes one request may send (a client that trickles its request, or never finishes it, holds one
// worker for at most request_timeout), keep-alive limits, and a stop that ends every connection at
// once (each wait polls the stop's eventfd too).
//
// Persistence (RFC 9112 §9.3, formerly RFC 7230 §6.3) is decided here, not by httplib 0.11 (which
// compares the Connection header case-sensitively and closes an HTTP/1.0 "keep-alive" connection
// while its answer says Keep-Alive): the Connection header's tokens, case-insensitive; "close"
// closes; HTTP/1.1 persists otherwise; HTTP/1.0 persists only with "keep-alive", answered with
// "Connection: keep-alive". Pipelined requests are answered one by one, in order; when a
// connection is to end (close, HTTP/1.0, keep_alive_max, a request that cannot be parsed), the
// answer says "Connection: close" and the requests sent behind it are never executed (a client
// retries them), and their bytes are read and dropped for a moment after flowd's FIN, so the
// kernel does not answer them with a reset that could cut the answers already sent.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"

namespace spdlog {
class logger;
}

namespace flowd {
class HeartbeatBoard;
}

namespace flowd::api {

struct ServerLimits {
  std::size_t threads = 8;
  std::size_t queue = 64;
  std::size_t max_body = 262144;
  std::chrono::milliseconds timeout{5000};
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds keep_alive_timeout{5000};
  std::size_t keep_alive_max = 100;
};

// Routes are registered on routes() (httplib's Get/Post/...), listening sockets given with
// add_listener(), then serve() runs until the stop token is triggered.
class HttpServer {
 public:
  HttpServer(const ServerLimits& limits, spdlog::logger& log);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  httplib::Server& routes() { return router_; }
  // A listening, non-blocking socket (listeners.hpp).
  void add_listener(UniqueFd fd, std::string name);
  // A descriptor serve()'s thread polls beside the listeners (a timerfd), and what it does when
  // the descriptor is readable (it must make it unreadable again). At most one; before serve().
  void add_timer(int fd, std::function<void()> ready) {
    timer_fd_ = fd;
    on_timer_ = std::move(ready);
  }

  // On the calling thread: accepts on every listener; `threads` workers per listener (registered
  // on `board` when given, as "<who> worker N", then "<who> worker N (listener 2)"...) serve it.
  // Returns once `stop` is triggered and every worker has ended its connection. Throws
  // std::system_error when poll() fails.
  void serve(std::stop_token stop, HeartbeatBoard* board, const std::string& who);

 private:
  // httplib's Server, for its request parsing and routing (process_request is protected).
  class Router : public httplib::Server {
   public:
    using httplib::Server::process_request;
  };
  struct Listener {
    UniqueFd fd;
    std::string name;
    bool tcp = false;         // accepted connections get TCP_NODELAY
    std::deque<int> pending;  // under mu_: accepted, not yet served; at most limits_.queue
  };

  void accept_ready(Listener& l, std::stop_token& stop);
  void worker(std::stop_token stop, Listener& l);
  // Serves requests until the connection is to end; whether bytes the client sent may be unread.
  bool serve_connection(int fd, int stop_fd);
  // Ends the connection: FIN, then unread bytes (pipelined requests not executed) dropped for a
  // moment so that the close does not reset what was answered.
  void close_connection(int fd, bool unread);

  ServerLimits limits_;
  spdlog::logger& log_;
  Router router_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::uint64_t closed_ = 0;  // connections the workers closed (the acceptor's EMFILE wait)
  int stop_fd_ = -1;          // serve()'s StopFd, for the workers' waits
  UniqueFd room_fd_;          // eventfd: a worker took a connection from a full queue
  int timer_fd_ = -1;         // add_timer()
  std::function<void()> on_timer_;
};

}  // namespace flowd::api
