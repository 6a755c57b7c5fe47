// SPDX-License-Identifier: Apache-2.0
// The real backends, fed flows of each origin: udp_firefly over real loopback sockets, the marker's
// decision before its map, and prometheus's per-origin series.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "backend_env.hpp"
#include "backends/ebpf/ebpf_backend.hpp"
#include "backends/prometheus/prometheus_backend.hpp"
#include "backends/udp_firefly/udp_firefly.hpp"
#include "core/registry_loader.hpp"
#include "flowd/component.hpp"
#include "flowd/event_queue.hpp"
#include "flowd/metrics_hub.hpp"
#include "registry_metrics.hpp"

namespace flowd {
namespace {

using namespace std::chrono_literals;
using test::metric_value;

// A UDP socket bound to ip:port (port 0: any) on loopback.
class UdpSink {
 public:
  explicit UdpSink(const char* ip, int port = 0)
      : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, ip, &a.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << ip << ":" << port;
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~UdpSink() { ::close(fd_); }
  int port() const { return port_; }
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 1000ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[65536];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_;
  int port_ = 0;
};

using Env = test::BackendEnv;

FlowID flow(FlowOrigin origin, const char* src, std::uint16_t sport, const char* dst,
            std::uint16_t dport, FlowState state = FlowState::kStart) {
  FlowID f;
  f.origin = origin;
  f.state = state;
  f.src = *IpAddress::parse(src);
  f.dst = *IpAddress::parse(dst);
  f.src_port = sport;
  f.dst_port = dport;
  f.experiment = 2;
  f.activity = 9;
  f.plugin = "test";
  return f;
}

// ---------------------------------------------------------------------------------------------
// udp_firefly: the flow's addresses are 127.0.0.2 -> 127.0.0.3, each with a listener on the firefly
// port; the collector listens on 127.0.0.1.

class UdpFireflyOrigin : public ::testing::Test {
 protected:
  UdpFireflyOrigin() : src("127.0.0.2"), dst("127.0.0.3", src.port()), collector("127.0.0.1") {}

  std::unique_ptr<Backend> start(bool forward_observed, bool with_collector = true) {
    auto b = env.create(
        udp_firefly::backend_info(),
        {{"port", std::to_string(src.port())},
         {"collector", with_collector ? "127.0.0.1:" + std::to_string(collector.port()) : ""},
         {"forward_observed", forward_observed ? "yes" : "no"}});
    b->start();
    return b;
  }
  void send(Backend& b, const FlowID& f) {
    b.handle(f);
    b.stop();  // flushes the batch
  }
  double suppressed(const char* origin, const char* reason) {
    return env.value("flowd_fireflies_suppressed_total", {{"origin", origin}, {"reason", reason}});
  }

  Env env;
  UdpSink src, dst, collector;
};

TEST_F(UdpFireflyOrigin, LocalFlowsGoToTheirPeerAndTheCollector) {
  auto b = start(false);
  send(*b, flow(FlowOrigin::kLocal, "127.0.0.2", 40000, "127.0.0.3", 5201));
  auto peer = dst.receive();
  auto copy = collector.receive();
  ASSERT_TRUE(peer && copy);
  EXPECT_EQ(*peer, *copy);
  EXPECT_FALSE(src.receive(100ms)) << "a firefly goes to the destination, not the source";
  EXPECT_EQ(env.value("flowd_fireflies_sent_total", {{"destination", "flow"}}), 1);
}

TEST_F(UdpFireflyOrigin, RemoteFlowsAreRelayedToTheCollectorOnly) {
  auto b = start(false);
  FlowID f = flow(FlowOrigin::kRemote, "127.0.0.2", 40000, "127.0.0.3", 5201);
  f.firefly_json = std::make_shared<const std::string>(R"({"as": "received"})");
  send(*b, f);
  auto relayed = collector.receive();
  ASSERT_TRUE(relayed);
  EXPECT_NE(relayed->find(R"({"as": "received"})"), std::string::npos) << *relayed;
  EXPECT_FALSE(dst.receive(200ms));
  EXPECT_FALSE(src.receive(10ms));
  EXPECT_EQ(suppressed("remote", "flow_address"), 1);
  EXPECT_EQ(suppressed("remote", "no_collector"), 0);
  EXPECT_EQ(env.value("flowd_fireflies_sent_total", {{"destination", "flow"}}), 0);
  EXPECT_EQ(env.value("flowd_fireflies_sent_total", {{"destination", "collector"}}), 1);
}

TEST_F(UdpFireflyOrigin, RemoteFlowsWithoutCollectorGoNowhere) {
  auto b = start(false, false);
  FlowID f = flow(FlowOrigin::kRemote, "127.0.0.2", 40000, "127.0.0.3", 5201);
  f.firefly_json = std::make_shared<const std::string>("{}");
  send(*b, f);
  EXPECT_FALSE(dst.receive(200ms));
  EXPECT_FALSE(src.receive(10ms));
  EXPECT_EQ(suppressed("remote", "flow_address"), 1);
  EXPECT_EQ(suppressed("remote", "no_collector"), 1);
}

TEST_F(UdpFireflyOrigin, ObservedFlowsAreNotSentUnlessForwarded) {
  auto b = start(false);
  send(*b, flow(FlowOrigin::kObserved, "127.0.0.2", 40000, "127.0.0.3", 5201));
  send(*b, flow(FlowOrigin::kObserved, "127.0.0.2", 40000, "127.0.0.3", 5201, FlowState::kEnd));
  EXPECT_FALSE(collector.receive(200ms));
  EXPECT_FALSE(dst.receive(10ms));
  EXPECT_FALSE(src.receive(10ms));
  EXPECT_EQ(suppressed("observed", "flow_address"), 2);
  EXPECT_EQ(suppressed("observed", "forward_observed"), 2);
  EXPECT_EQ(env.value("flowd_fireflies_sent_total", {{"destination", "collector"}}), 0);
}

TEST_F(UdpFireflyOrigin, ForwardedObservedFlowsGoToTheCollectorOnlyAsExported) {
  auto b = env.create(udp_firefly::backend_info(),
                      {{"port", std::to_string(src.port())},
                       {"collector", "127.0.0.1:" + std::to_string(collector.port())},
                       {"forward_observed", "yes"},
                       {"ip4_src", "192.0.2.7"}});
  b->start();
  send(*b, flow(FlowOrigin::kObserved, "127.0.0.2", 40000, "127.0.0.3", 5201));
  auto copy = collector.receive();
  ASSERT_TRUE(copy);
  // ip4_src names this host: it must not replace the source a router exported.
  EXPECT_NE(copy->find(R"("src-ip": "127.0.0.2", "dst-ip": "127.0.0.3")"), std::string::npos)
      << *copy;
  EXPECT_FALSE(dst.receive(200ms));
  EXPECT_FALSE(src.receive(10ms));
  EXPECT_EQ(suppressed("observed", "flow_address"), 1);
  EXPECT_EQ(suppressed("observed", "forward_observed"), 0);
  // A local flow still gets this host's source address.
  send(*b, flow(FlowOrigin::kLocal, "127.0.0.2", 40001, "127.0.0.3", 5201));
  auto local = dst.receive();
  ASSERT_TRUE(local);
  EXPECT_NE(local->find(R"("src-ip": "192.0.2.7")"), std::string::npos) << *local;
}

TEST_F(UdpFireflyOrigin, ForwardObservedNeedsACollector) {
  EXPECT_THROW(start(true, false), ConfigError);
}

// With netlink = yes and ongoing_interval, a local flow whose socket is here gets tcp_info and
// ongoing fireflies. An observed flow naming the same socket gets neither: the backend keeps no
// per-flow state for it beyond the start time of what it forwards.
TEST_F(UdpFireflyOrigin, NoNetlinkStateForObservedFlows) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  auto connect_one = [&](std::uint16_t& sport) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    sockaddr_in me{};
    socklen_t ml = sizeof me;
    ::getsockname(c, reinterpret_cast<sockaddr*>(&me), &ml);
    sport = ntohs(me.sin_port);
    return c;
  };
  std::uint16_t local_port = 0, observed_port = 0;
  int c1 = connect_one(local_port), c2 = connect_one(observed_port);
  const std::uint16_t server_port = ntohs(a.sin_port);

  auto b = env.create(udp_firefly::backend_info(),
                      {{"port", std::to_string(src.port())},
                       {"collector", "127.0.0.1:" + std::to_string(collector.port())},
                       {"forward_observed", "yes"},
                       {"netlink", "yes"},
                       {"ongoing_interval", "1"}});
  b->start();
  EventQueue q(16);
  q.push(flow(FlowOrigin::kLocal, "127.0.0.1", local_port, "127.0.0.1", server_port));
  q.push(flow(FlowOrigin::kObserved, "127.0.0.1", observed_port, "127.0.0.1", server_port));
  std::jthread worker([&](std::stop_token st) { b->run(st, q); });
  std::map<std::pair<std::string, std::uint16_t>, std::string> got;  // (state, src port) -> firefly
  for (auto end = std::chrono::steady_clock::now() + 1800ms;
       std::chrono::steady_clock::now() < end;) {
    auto m = collector.receive(100ms);
    if (!m) continue;
    std::string state = m->find(R"("state": "ongoing")") != std::string::npos ? "ongoing" : "start";
    std::uint16_t sport =
        m->find("\"src-port\": " + std::to_string(local_port)) != std::string::npos ? local_port
                                                                                    : observed_port;
    got[{state, sport}] = *m;
  }
  q.close();
  worker.join();
  b->stop();
  ::close(c1);
  ::close(c2);
  ::close(lfd);
  using Key = std::pair<std::string, std::uint16_t>;
  ASSERT_TRUE(got.contains(Key("start", local_port)));
  ASSERT_TRUE(got.contains(Key("start", observed_port))) << "forwarded to the collector";
  EXPECT_NE(got[Key("start", local_port)].find(R"("netlink": {)"), std::string::npos);
  EXPECT_EQ(got[Key("start", observed_port)].find("netlink"), std::string::npos);
  EXPECT_TRUE(got.contains(Key("ongoing", local_port))) << "the local flow's ongoing firefly";
  EXPECT_FALSE(got.contains(Key("ongoing", observed_port)))
      << "no ongoing timer for an observed flow";
}

// ---------------------------------------------------------------------------------------------
// ebpf: without start() there is no map, so an event that reaches the map shows up as a refused
// update; remote and observed events must stop before it, counted.

TEST(EbpfOrigin, OnlyLocalFlowsReachTheFlowMap) {
  Env env;
  auto b = env.create(ebpf::backend_info(), {});
  auto errors = [&] { return env.value("flowd_marker_map_update_errors_total", {}); };
  for (auto state : {FlowState::kStart, FlowState::kEnd}) {
    b->handle(flow(FlowOrigin::kRemote, "fd00::1", 40000, "fd00::2", 5201, state));
    b->handle(flow(FlowOrigin::kObserved, "fd00::1", 40000, "fd00::2", 5201, state));
  }
  EXPECT_EQ(errors(), 0) << "remote and observed events never touch the map";
  EXPECT_EQ(env.value("flowd_marker_ignored_events_total", {{"origin", "remote"}}), 2);
  EXPECT_EQ(env.value("flowd_marker_ignored_events_total", {{"origin", "observed"}}), 2);
  EXPECT_FALSE(
      metric_value(env.metrics, "flowd_marker_ignored_events_total", {{"origin", "local"}}));
  b->handle(flow(FlowOrigin::kLocal, "fd00::1", 40000, "fd00::2", 5201));
  EXPECT_EQ(errors(), 1) << "a local start goes to the map (absent here)";
}

// ---------------------------------------------------------------------------------------------
// prometheus: every origin counts, each in its own series and its own table.

TEST(PrometheusOrigin, ActiveFlowsPerOriginAndAForgedEndEndsOnlyItsOwn) {
  Env env;
  auto b = env.create(prometheus_backend::backend_info(), {{"max_active_flows", "1"}});
  auto active = [&](const char* origin) {
    return env.value("flowd_active_flows",
                     {{"experiment", "atlas"}, {"activity", "Debug"}, {"origin", origin}});
  };
  for (auto o : {FlowOrigin::kLocal, FlowOrigin::kRemote, FlowOrigin::kObserved})
    b->handle(flow(o, "192.0.2.1", 40000, "192.0.2.2", 5201));
  EXPECT_EQ(active("local"), 1);
  EXPECT_EQ(active("remote"), 1);
  EXPECT_EQ(active("observed"), 1);
  // The same 5-tuple's end from a firefly ends the remote flow, not the local one.
  b->handle(flow(FlowOrigin::kRemote, "192.0.2.1", 40000, "192.0.2.2", 5201, FlowState::kEnd));
  EXPECT_EQ(active("remote"), 0);
  EXPECT_EQ(active("local"), 1);
  // Observed flows fill their own budget (max_active_flows = 1), not the local one's.
  b->handle(flow(FlowOrigin::kObserved, "192.0.2.1", 40001, "192.0.2.2", 5201));
  EXPECT_EQ(env.value("flowd_active_flows_overflow_total", {{"origin", "observed"}}), 1);
  EXPECT_EQ(env.value("flowd_active_flows_overflow_total", {{"origin", "local"}}), 0);
  b->handle(flow(FlowOrigin::kLocal, "192.0.2.1", 40000, "192.0.2.2", 5201, FlowState::kEnd));
  b->handle(flow(FlowOrigin::kLocal, "192.0.2.1", 40001, "192.0.2.2", 5201));
  EXPECT_EQ(active("local"), 1);
  EXPECT_EQ(env.value("flowd_active_flows_overflow_total", {{"origin", "local"}}), 0);
  b->stop();
  EXPECT_EQ(active("local"), 0);
  EXPECT_EQ(active("observed"), 0);
}

}  // namespace
}  // namespace flowd
