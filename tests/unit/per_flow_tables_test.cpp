// SPDX-License-Identifier: Apache-2.0
// Every per-flow table filled past its capacity: what it forgets (the oldest-inserted flow, or for
// the netflow tracker the new one) and the overflow counter its owner exports.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "backend_env.hpp"
#include "backends/prometheus/flow_metrics.hpp"
#include "backends/prometheus/prometheus_backend.hpp"
#include "backends/udp_firefly/start_times.hpp"
#include "backends/udp_firefly/tcp_enrichment.hpp"
#include "backends/udp_firefly/udp_firefly.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"
#include "core/registry_loader.hpp"
#include "flowd/component.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/rfc3339.hpp"
#include "registry_metrics.hpp"

namespace flowd {
namespace {

using namespace std::chrono_literals;
using test::metric_value;

const TimePoint kT0 = TimePoint{std::chrono::seconds{1795356761}};

FlowID tcp_flow(std::uint16_t sport, FlowState state = FlowState::kStart,
                FlowOrigin origin = FlowOrigin::kLocal) {
  FlowID f;
  f.origin = origin;
  f.state = state;
  f.protocol = Protocol::kTcp;
  f.src = *IpAddress::parse("127.0.0.1");
  f.dst = *IpAddress::parse("127.0.0.1");
  f.src_port = sport;
  f.dst_port = 5201;
  f.experiment = 2;
  f.activity = 9;
  f.plugin = "test";
  return f;
}

using Env = test::BackendEnv;

TEST(StartTimesTable, ForgetsTheOldestStartAndCountsIt) {
  udp_firefly::StartTimes t(2);
  for (std::uint16_t p = 1; p <= 3; ++p) t.on_event(tcp_flow(p), kT0 + std::chrono::seconds(p));
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.overflow(), 1u);
  // Flow 1's start was forgotten: its end carries the end's own time; flow 2's the start seen.
  EXPECT_EQ(t.on_event(tcp_flow(1, FlowState::kEnd), kT0 + 100s), kT0 + 100s);
  EXPECT_EQ(t.on_event(tcp_flow(2, FlowState::kEnd), kT0 + 100s), kT0 + 2s);
  EXPECT_EQ(t.size(), 1u);
  // The end freed a place: the next start evicts nothing.
  t.on_event(tcp_flow(4), kT0 + 4s);
  EXPECT_EQ(t.overflow(), 1u);
  EXPECT_EQ(t.on_event(tcp_flow(3, FlowState::kOngoing), kT0 + 100s), kT0 + 3s);
}

TEST(TcpEnrichmentTable, ForgetsTheOldestFlowAndCountsIt) {
  udp_firefly::TcpEnrichment e(0s, 2);
  e.open();  // sock_diag needs no privilege; these flows have no socket, so no netlink object
  for (std::uint16_t p = 1; p <= 3; ++p) EXPECT_EQ(e.on_event(tcp_flow(p)).netlink, "");
  EXPECT_EQ(e.tracked(), 2u);
  EXPECT_EQ(e.overflow(), 1u);
  e.on_event(tcp_flow(2, FlowState::kEnd));
  EXPECT_EQ(e.tracked(), 1u);
  e.on_event(tcp_flow(4));
  EXPECT_EQ(e.overflow(), 1u);
  e.on_event(tcp_flow(5));
  EXPECT_EQ(e.overflow(), 2u);
  EXPECT_EQ(e.tracked(), 2u);
}

TEST(FlowSeriesTable, NewFlowTakesTheOldestFlowsPlace) {
  prometheus::Registry reg;
  auto& overflow = prometheus::BuildCounter().Name("overflow_total").Register(reg).Add({});
  prometheus_backend::FlowMetrics m(2, overflow);
  auto names = std::make_shared<prometheus_backend::FlowNames>(
      prometheus_backend::FlowNames{"atlas", "Debug"});
  for (std::uint16_t p = 1; p <= 3; ++p) m.start(tcp_flow(p), names);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(overflow.Value(), 1);
  m.start(tcp_flow(3), names);  // already there
  EXPECT_EQ(overflow.Value(), 1);
  m.end(tcp_flow(1));  // evicted already: nothing to end
  EXPECT_EQ(m.size(), 2u);
  m.end(tcp_flow(2));
  EXPECT_EQ(m.size(), 1u);
  FlowID udp = tcp_flow(9);
  udp.protocol = Protocol::kUdp;
  m.start(udp, names);  // TCP only
  EXPECT_EQ(m.size(), 1u);
}

TEST(ActiveFlowsTable, TheOldestFlowStopsCountingAsActive) {
  Env env;
  auto b = env.create(prometheus_backend::backend_info(),
                      {{"max_active_flows", "2"}, {"flow_metrics", "no"}});
  auto active = [&] {
    return env.value("flowd_active_flows",
                     {{"experiment", "atlas"}, {"activity", "Debug"}, {"origin", "local"}});
  };
  auto overflow = [&](const char* origin) {
    return env.value("flowd_active_flows_overflow_total", {{"origin", origin}});
  };
  for (std::uint16_t p = 1; p <= 3; ++p) b->handle(tcp_flow(p));
  EXPECT_EQ(active(), 2);
  EXPECT_EQ(overflow("local"), 1);
  EXPECT_EQ(overflow("observed"), 0);
  // Flow 1 was forgotten: its end changes nothing; flow 2's and 3's end count down.
  b->handle(tcp_flow(1, FlowState::kEnd));
  EXPECT_EQ(active(), 2);
  b->handle(tcp_flow(2, FlowState::kEnd));
  b->handle(tcp_flow(3, FlowState::kEnd));
  EXPECT_EQ(active(), 0);
  b->stop();
}

// Remote fireflies may claim any experiment and activity of 0..65535: the unregistered pairs get
// series of their own up to a cap, then share experiment="other" (issue 13: labels from the wire).
TEST(ActiveFlowsTable, UnregisteredPairsAreCappedWithAnOtherBucket) {
  Env env;
  auto b = env.create(prometheus_backend::backend_info(), {{"flow_metrics", "no"}});
  std::uint16_t port = 1;
  for (std::uint16_t e = 1000; e < 1100; ++e)
    for (std::uint16_t a = 0; a < 10; ++a) {
      FlowID f = tcp_flow(port++, FlowState::kStart, FlowOrigin::kRemote);
      f.experiment = e;
      f.activity = a;
      b->handle(f);
    }
  b->handle(tcp_flow(port++, FlowState::kStart, FlowOrigin::kRemote));  // registered: atlas/Debug
  std::size_t series = 0;
  double flows = 0;
  for (const auto& fam : env.metrics.Collect())
    if (fam.name == "flowd_active_flows")
      for (const auto& m : fam.metric) {
        ++series;
        flows += m.gauge.value;
      }
  EXPECT_EQ(series, 256u + 2u);  // 256 unregistered pairs, other, atlas/Debug
  EXPECT_EQ(flows, 1001);
  EXPECT_EQ(env.value("flowd_active_flows",
                      {{"experiment", "other"}, {"activity", "other"}, {"origin", "remote"}}),
            1000 - 256);
  EXPECT_EQ(env.value("flowd_active_flows",
                      {{"experiment", "1000"}, {"activity", "0"}, {"origin", "remote"}}),
            1);
  // The remote claims used up the remote budget only: a local flow's unregistered pair is still
  // named by its numbers.
  FlowID local = tcp_flow(port++, FlowState::kStart, FlowOrigin::kLocal);
  local.experiment = 2000;
  local.activity = 1;
  b->handle(local);
  EXPECT_EQ(env.value("flowd_active_flows",
                      {{"experiment", "2000"}, {"activity", "1"}, {"origin", "local"}}),
            1);
  EXPECT_EQ(env.value("flowd_active_flows",
                      {{"experiment", "atlas"}, {"activity", "Debug"}, {"origin", "remote"}}),
            1);
  b->stop();
}

// A UDP socket on 127.0.0.1, any port.
struct Sink {
  UniqueFd fd{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  std::uint16_t port = 0;
  Sink() {
    auto a = net::SocketAddress::of(*IpAddress::parse("127.0.0.1"), 0);
    EXPECT_EQ(::bind(fd.get(), a.get(), a.length), 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    port = net::SocketAddress::of(ss, len).port();
  }
  std::optional<nlohmann::json> receive() {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return std::nullopt;
    char buf[65536];
    auto n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    return nlohmann::json::parse(std::string(buf, static_cast<std::size_t>(n)));
  }
};

TEST(UdpFireflyTables, OverflowIsExportedPerTableAndOrigin) {
  Env env;
  Sink sink;
  auto b = env.create(
      udp_firefly::backend_info(),
      {{"port", std::to_string(sink.port)}, {"max_tracked_flows", "2"}, {"syslog_header", "no"}});
  b->start();
  auto overflow = [&](const char* origin) {
    return env.value("flowd_firefly_flows_overflow_total",
                     {{"table", "start_time"}, {"origin", origin}});
  };
  EXPECT_EQ(overflow("local"), 0) << "the series exist from the start";
  EXPECT_EQ(
      env.value("flowd_firefly_flows_overflow_total", {{"table", "netlink"}, {"origin", "local"}}),
      -1)
      << "no netlink table without netlink = yes";
  for (std::uint16_t p = 1; p <= 3; ++p) {
    FlowID f = tcp_flow(p);
    f.start_time = kT0 + std::chrono::seconds(p);
    b->handle(f);
  }
  b->stop();
  EXPECT_EQ(overflow("local"), 1);
  EXPECT_EQ(overflow("remote"), 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sink.receive());
  // Flow 1's start was forgotten, flow 3's is known.
  for (std::uint16_t p : {1, 3}) {
    FlowID end = tcp_flow(p, FlowState::kEnd);
    end.end_time = kT0 + 100s;
    b->handle(end);
  }
  b->stop();
  auto first = sink.receive(), second = sink.receive();
  ASSERT_TRUE(first && second);
  EXPECT_EQ((*first)["flow-lifecycle"]["start-time"], format_time_iso(kT0 + 100s));
  EXPECT_EQ((*second)["flow-lifecycle"]["start-time"], format_time_iso(kT0 + 3s));
}

}  // namespace
}  // namespace flowd
