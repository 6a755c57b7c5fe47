// SPDX-License-Identifier: Apache-2.0
// TcpSessions (src/plugins/netflow/tcp_sessions.hpp) on real loopback sockets: the caps, the idle
// timeout, and the accept back-off when the process is out of descriptors (issue 13).
#include "plugins/netflow/tcp_sessions.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <span>
#include <thread>
#include <vector>

namespace flowd::netflow {
namespace {

using namespace std::chrono_literals;
using Outcome = TcpSessions::Accepted::Outcome;

int port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A blocking client connected to 127.0.0.1:port from `source` (the connection waits in the
// listener's backlog until accepted).
UniqueFd connect_from(int port, const char* source = "127.0.0.1") {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, source, &a.sin_addr);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

// True when the server closed the client's connection (EOF or reset) within `timeout`.
bool closed_by_server(int fd, std::chrono::milliseconds timeout = 1s) {
  timeval tv{0, static_cast<suseconds_t>(timeout.count() * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

struct Fixture {
  explicit Fixture(TcpSessionLimits limits) : sessions(limits, collector::DecoderLimits{}) {
    UniqueFd l = open_tcp_listener(net::Endpoint{"127.0.0.1", 0}, "");
    listener = l.get();
    port = port_of(listener);
    sessions.add_listener(std::move(l));
    sessions.watch(loop);
  }
  TcpSessions::Accepted accept() {
    return sessions.accept(listener, loop, [](const IpAddress&) { return true; });
  }
  UniqueFd stop{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  WorkerLoop loop{stop.get(), 60s};
  TcpSessions sessions;
  int listener = -1;
  int port = 0;
};

TEST(TcpSessions, BeyondMaxSessionsNewConnectionsAreClosedAndOldOnesKept) {
  Fixture f({.max_sessions = 2, .max_per_exporter = 16});
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_from(f.port));
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);
  const auto third = f.accept();
  EXPECT_EQ(third.outcome, Outcome::kRefused);
  EXPECT_EQ(third.refusal, TcpRefusal::kMaxSessions);
  EXPECT_EQ(f.sessions.size(), 2u);
  EXPECT_TRUE(closed_by_server(clients[2].get()));
  EXPECT_FALSE(closed_by_server(clients[0].get(), 50ms));
}

TEST(TcpSessions, PerExporterCapCountsAddressesNotPorts) {
  Fixture f({.max_sessions = 16, .max_per_exporter = 2});
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_from(f.port));
  clients.push_back(connect_from(f.port, "127.0.0.2"));
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);
  const auto third = f.accept();
  EXPECT_EQ(third.outcome, Outcome::kRefused);
  EXPECT_EQ(third.refusal, TcpRefusal::kPerExporter);
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);  // 127.0.0.2 has its own slots
  // A closed session frees its exporter's slot.
  f.sessions.close(f.sessions.sessions().begin()->first, f.loop);
  clients.push_back(connect_from(f.port));
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);
  EXPECT_EQ(f.sessions.size(), 3u);
}

TEST(TcpSessions, IdleSessionsAreClosedAndActiveOnesKept) {
  Fixture f({.idle_timeout = 300s});
  auto quiet = connect_from(f.port);
  auto busy = connect_from(f.port);
  ASSERT_EQ(f.accept().outcome, Outcome::kSession);
  auto second = f.accept();
  ASSERT_EQ(second.outcome, Outcome::kSession);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(f.sessions.close_idle(t0 + 299s, f.loop).empty());
  // The busy client sends bytes (half an IPFIX header: the framer waits for the rest).
  const int busy_fd =
      port_of(busy.get()) == second.session->peer().port ? second.session->fd() : -1;
  ASSERT_GE(busy_fd, 0);
  ASSERT_EQ(send(busy.get(), "\x00\x0a", 2, 0), 2);
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(f.sessions.find(busy_fd)->read([](std::span<const std::uint8_t>) {}),
            TcpSession::State::kOpen);
  // 300 s after the quiet one connected, but less after the busy one last sent: only the quiet one.
  const auto busy_since = f.sessions.find(busy_fd)->last_active();
  ASSERT_GE(busy_since - t0, 15ms);
  const auto closed = f.sessions.close_idle(busy_since + 300s - 10ms, f.loop);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].port, port_of(quiet.get()));
  EXPECT_EQ(f.sessions.size(), 1u);
  EXPECT_TRUE(closed_by_server(quiet.get()));
  // 0: never.
  Fixture never({.idle_timeout = 0s});
  auto c = connect_from(never.port);
  ASSERT_EQ(never.accept().outcome, Outcome::kSession);
  EXPECT_TRUE(never.sessions.close_idle(t0 + 100000s, never.loop).empty());
}

// Out of descriptors, accept() fails with EMFILE: the listener leaves the epoll set for 100 ms,
// then 200 ms (doubling to 1 s), so the loop sleeps instead of spinning on a readable listener;
// when descriptors are back the waiting connection is accepted.
TEST(TcpSessions, EmfileRestsTheListenerInsteadOfSpinning) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  Fixture f({.descriptor_reserve = 0});
  auto client = connect_from(f.port);
  // Lower the soft limit to just above the highest descriptor in use, then use up the rest.
  const int top = dup(0);
  ASSERT_GE(top, 0);
  close(top);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(top) + 8;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<UniqueFd> filler;
  for (int fd; (fd = dup(0)) >= 0;) filler.emplace_back(fd);
  ASSERT_EQ(errno, EMFILE);

  const auto first = f.accept();
  EXPECT_EQ(first.outcome, Outcome::kBackoff);
  EXPECT_EQ(first.refusal, TcpRefusal::kEmfile);
  EXPECT_EQ(first.error, EMFILE);
  EXPECT_EQ(first.backoff, 100ms);
  EXPECT_TRUE(f.sessions.resting());
  EXPECT_EQ(f.accept().outcome, Outcome::kNone);  // resting: accept() is not even tried

  // The next event is the back-off timer, about 100 ms later: not the (still readable) listener.
  auto wait_for_timer = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    int ready = -1, events = 0;
    while (ready < 0 && std::chrono::steady_clock::now() - t0 < 3s)
      f.loop.run_once([] {},
                      [&](int fd) {
                        ++events;
                        if (f.sessions.is_backoff_timer(fd)) {
                          ready = fd;
                          f.sessions.resume(f.loop);
                        }
                      });
    EXPECT_EQ(events, 1);  // nothing else woke the loop
    EXPECT_GE(ready, 0);
    return std::chrono::steady_clock::now() - t0;
  };
  EXPECT_GE(wait_for_timer(), 90ms);
  EXPECT_FALSE(f.sessions.resting());
  const auto second = f.accept();
  EXPECT_EQ(second.outcome, Outcome::kBackoff);
  EXPECT_EQ(second.backoff, 200ms);
  EXPECT_GE(wait_for_timer(), 190ms);

  filler.clear();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(f.accept().outcome, Outcome::kSession);
  EXPECT_EQ(f.sessions.size(), 1u);
}

// The descriptor reserve: a connection whose descriptor leaves fewer than `descriptor_reserve`
// free is closed at once (counted as emfile), before the process is out of descriptors.
TEST(TcpSessions, ConnectionInTheDescriptorReserveIsClosed) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  Fixture f({.descriptor_reserve = 16});
  auto a = connect_from(f.port);
  auto b = connect_from(f.port);
  const int top = dup(0);
  ASSERT_GE(top, 0);
  close(top);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(top) + 17;  // `top` is free and 16 above it: one session fits
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const auto first = f.accept();
  const auto second = f.accept();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(first.outcome, Outcome::kSession);
  EXPECT_EQ(second.outcome, Outcome::kRefused);
  EXPECT_EQ(second.refusal, TcpRefusal::kEmfile);
  EXPECT_TRUE(closed_by_server(b.get()));
}

}  // namespace
}  // namespace flowd::netflow
