// SPDX-License-Identifier: Apache-2.0
// IPFIX-over-TCP sessions against a running flowd are bounded (issue 13): beyond max_tcp_sessions
// and max_tcp_sessions_per_exporter a connection is closed at once and counted, an idle session is
// closed after tcp_idle_timeout, and out of descriptors (a low RLIMIT_NOFILE) flowd neither spins
// nor stops answering /metrics, and accepts again once descriptors are back.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

// A connected TCP client to 127.0.0.1:port from `source`, or -1 when the connection did not
// complete within 2 s (a listener whose backlog is full and never drained).
int connect_from(int port, const char* source = "127.0.0.1") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, source, &a.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof err;
  if ((connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 &&
       (errno != EINPROGRESS || poll(&p, 1, 2000) != 1)) ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// Scrapes until `series` is at most `want` or 5 s passed; returns the last scrape.
std::string scrape_until_at_most(const Daemon& d, const std::string& series, double want) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::string m = d.scrape();
  while (metric_value(m, series).value_or(want + 1) > want &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    m = d.scrape();
  }
  return m;
}

struct Clients {
  ~Clients() { close_all(); }
  void close_all() {
    for (int fd : fds) close(fd);
    fds.clear();
  }
  std::vector<int> fds;
};

// True when flowd closed the client's end (EOF or reset) within `timeout`.
bool closed_by_flowd(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  const ssize_t n = recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

// The time one /metrics scrape takes; the body in `body` (empty when it failed).
std::chrono::milliseconds timed_scrape(const Daemon& d, std::string& body) {
  const auto t0 = std::chrono::steady_clock::now();
  body = d.scrape();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

// utime + stime of `pid` in seconds (/proc/PID/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string netflow_tcp_config(const Daemon& d, int tcp_port, const std::string& keys) {
  return d.config_with_plugins("netflow") +
         "\n[plugin.netflow]\nlisten =\ntcp_listen = 127.0.0.1:" + std::to_string(tcp_port) + "\n" +
         keys;
}

const std::string kRefused = "flowd_netflow_tcp_sessions_refused_total";
const std::string kClosed = "flowd_netflow_tcp_sessions_closed_total";

TEST(NetflowTcpLimits, ConnectionsBeyondTheCapsAreRefusedAndCounted) {
  Daemon d;
  const int port = free_tcp_port();
  d.start(netflow_tcp_config(d, port, "max_tcp_sessions = 8\nmax_tcp_sessions_per_exporter = 6\n"));
  Clients c;
  // 6 from 127.0.0.1 (its cap), 2 more from it (refused: per_exporter), then 127.0.0.2 fills the
  // remaining 2 slots, and 30 more from 127.0.0.2 are refused (max_sessions).
  for (int i = 0; i < 8; ++i) c.fds.push_back(connect_from(port));
  std::string m = d.scrape_until(kRefused + "{reason=\"per_exporter\"}", 2);
  for (int i = 0; i < 32; ++i) c.fds.push_back(connect_from(port, "127.0.0.2"));
  for (int fd : c.fds) ASSERT_GE(fd, 0);
  m = d.scrape_until(kRefused + "{reason=\"max_sessions\"}", 30);
  EXPECT_EQ(metric_value(m, kRefused + "{reason=\"per_exporter\"}"), 2) << m;
  EXPECT_EQ(metric_value(m, kRefused + "{reason=\"max_sessions\"}"), 30) << m;
  EXPECT_EQ(metric_value(m, kRefused + "{reason=\"emfile\"}"), 0) << m;
  EXPECT_EQ(metric_value(m, "flowd_netflow_tcp_sessions"), 8) << m;
  // The refused ones were closed at once; the first six are kept.
  EXPECT_TRUE(closed_by_flowd(c.fds[6], 1s));
  EXPECT_TRUE(closed_by_flowd(c.fds.back(), 1s));
  EXPECT_FALSE(closed_by_flowd(c.fds[0], 100ms));
  std::string body;
  EXPECT_LT(timed_scrape(d, body), 1s);
  EXPECT_FALSE(body.empty());
  // A session that ends frees its slot: the peer's close is counted and a new one is taken.
  close(c.fds[0]);
  c.fds.erase(c.fds.begin());
  m = d.scrape_until(kClosed + "{reason=\"peer\"}", 1);
  EXPECT_EQ(metric_value(m, kClosed + "{reason=\"peer\"}"), 1) << m;
  c.fds.push_back(connect_from(port));
  EXPECT_FALSE(closed_by_flowd(c.fds.back(), 300ms));
  m = d.scrape();
  EXPECT_EQ(metric_value(m, "flowd_netflow_tcp_sessions"), 8) << m;
  EXPECT_EQ(metric_value(m, kRefused + "{reason=\"per_exporter\"}"), 2) << m;
  EXPECT_NE(d.proc->log().find("max_tcp_sessions (8) are open"), std::string::npos)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

TEST(NetflowTcpLimits, IdleSessionIsClosedAfterTcpIdleTimeout) {
  Daemon d;
  const int port = free_tcp_port();
  d.start(netflow_tcp_config(d, port, "tcp_idle_timeout = 2s\n"));
  Clients c;
  c.fds.push_back(connect_from(port));
  ASSERT_GE(c.fds[0], 0);
  d.scrape_until("flowd_netflow_tcp_sessions", 1);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(closed_by_flowd(c.fds[0], 6s)) << d.proc->log();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 5s);
  std::string m = d.scrape_until(kClosed + "{reason=\"idle\"}", 1);
  EXPECT_EQ(metric_value(m, kClosed + "{reason=\"idle\"}"), 1) << m;
  m = scrape_until_at_most(d, "flowd_netflow_tcp_sessions", 0);
  EXPECT_EQ(metric_value(m, "flowd_netflow_tcp_sessions"), 0) << m;
  EXPECT_NE(d.proc->log().find("sent nothing for 2 s; closed it"), std::string::npos)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// A peer opening and closing sessions in a loop wrote two info lines per connection (678 cycles in
// 5 s: 1,356 lines). Session opens and closes are rate-limited like bad input.
TEST(NetflowTcpLimits, SessionChurnDoesNotFloodTheLog) {
  Daemon d;
  const int port = free_tcp_port();
  d.start(netflow_tcp_config(d, port, ""));
  for (int i = 0; i < 300; ++i) {
    int fd = connect_from(port);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  d.scrape_until(kClosed + "{reason=\"peer\"}", 300);
  EXPECT_EQ(d.stop(), 0);
  std::string log = d.proc->log();
  std::size_t lines = 0;
  for (std::size_t at = log.find("IPFIX session from"); at != std::string::npos;
       at = log.find("IPFIX session from", at + 1))
    ++lines;
  EXPECT_GT(lines, 0u) << log;
  EXPECT_LT(lines, 60u) << log;
}

// Under RLIMIT_NOFILE 64, with the default caps (256 sessions, 16 per exporter: more than the
// descriptors), 150 connections from 10 exporter addresses: flowd keeps a reserve of descriptors
// (refusals counted as emfile), keeps answering /metrics at once, does not spin, and takes sessions
// again once the clients are gone.
TEST(NetflowTcpLimits, OutOfDescriptorsFlowdNeitherSpinsNorGoesSilent) {
  Daemon d;
  const int port = free_tcp_port();
  d.start(netflow_tcp_config(d, port, ""), "flowd.cfg", {},
          {"/usr/bin/prlimit", "--nofile=64:64", "--"});
  Clients c;
  // Every connection completes (flowd accepts or closes each): none waits in a full backlog. The
  // first that does not ends the loop, and the checks below say how flowd fares.
  for (int i = 0; i < 150; ++i) {
    const int fd = connect_from(port, ("127.0.1." + std::to_string(1 + i % 10)).c_str());
    if (fd < 0) break;
    c.fds.push_back(fd);
  }
  EXPECT_EQ(c.fds.size(), 150u);
  std::string m = d.scrape_until(kRefused + "{reason=\"emfile\"}", 1);
  EXPECT_GE(metric_value(m, kRefused + "{reason=\"emfile\"}").value_or(0), 1) << m;
  const double sessions = metric_value(m, "flowd_netflow_tcp_sessions").value_or(0);
  EXPECT_GE(sessions, 1) << m;
  EXPECT_LT(sessions, 64) << m;
  // Not spinning: under 0.3 s of CPU over 2 s while the connections stay open.
  const double cpu0 = cpu_seconds(d.proc->pid());
  std::this_thread::sleep_for(2s);
  const double cpu = cpu_seconds(d.proc->pid()) - cpu0;
  EXPECT_LT(cpu, 0.3) << "flowd used " << cpu << " s of CPU in 2 s";
  RecordProperty("cpu_seconds_in_2s", std::to_string(cpu));
  // /metrics answers at once, several times in a row (each scrape needs a descriptor).
  for (int i = 0; i < 5; ++i) {
    std::string body;
    EXPECT_LT(timed_scrape(d, body), 1s);
    EXPECT_NE(body.find(kRefused), std::string::npos);
  }
  EXPECT_NE(d.proc->log().find("nearly out of file descriptors"), std::string::npos)
      << d.proc->log();
  // Once the clients are gone, their sessions end and a new connection is taken.
  c.close_all();
  m = scrape_until_at_most(d, "flowd_netflow_tcp_sessions", 0);
  EXPECT_EQ(metric_value(m, "flowd_netflow_tcp_sessions"), 0) << m;
  EXPECT_EQ(metric_value(m, kClosed + "{reason=\"peer\"}"), sessions) << m;
  c.fds.push_back(connect_from(port));
  m = d.scrape_until("flowd_netflow_tcp_sessions", 1);
  EXPECT_EQ(metric_value(m, "flowd_netflow_tcp_sessions"), 1) << m;
  EXPECT_FALSE(closed_by_flowd(c.fds.back(), 300ms));
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
