// SPDX-License-Identifier: Apache-2.0
// Every plugin says where its flows come from (FlowID::origin), and the backends' rules per origin:
// where udp_firefly sends a firefly, what the marker marks.
#include <gtest/gtest.h>

#include "backends/ebpf/mark_policy.hpp"
#include "backends/udp_firefly/firefly_route.hpp"
#include "core/registry_loader.hpp"
#include "firefly/firefly_parser.hpp"
#include "netlink/sock_diag.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "plugins/np_api/pipe_line.hpp"
#include "plugins/scanner/connection_tracker.hpp"

namespace flowd {
namespace {

TEST(FlowOrigin, Names) {
  EXPECT_EQ(to_string(FlowOrigin::kLocal), "local");
  EXPECT_EQ(to_string(FlowOrigin::kRemote), "remote");
  EXPECT_EQ(to_string(FlowOrigin::kObserved), "observed");
}

TEST(FlowOrigin, AFlowThatForgotItsOriginIsTheMostRestricted) {
  FlowID f;
  EXPECT_EQ(f.origin, FlowOrigin::kObserved);
  EXPECT_FALSE(ebpf::marks(f.origin));
  auto r = udp_firefly::route_firefly(f.origin, {.collector = true, .forward_observed = false});
  EXPECT_FALSE(r.sends());
}

// ---------------------------------------------------------------------------------------------
// Each plugin sets the origin where it makes its FlowIDs.

TEST(FlowOrigin, NpApiLinesAreLocal) {
  std::string error;
  auto reg = ScitagsRegistry::parse(registry_snapshot_json(), error);
  ASSERT_TRUE(reg) << error;
  auto r =
      np_api::parse_pipe_line("start tcp 192.0.2.1 1 192.0.2.2 2 atlas Debug", *reg, Clock::now());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.flow.origin, FlowOrigin::kLocal);
  r = np_api::parse_pipe_line("end udp ::1 1 ::2 2 2 9", *reg, Clock::now());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.flow.origin, FlowOrigin::kLocal);
}

TEST(FlowOrigin, ReceivedFirefliesAreRemote) {
  auto r = firefly::parse_firefly(
      R"({"version": 1, "flow-lifecycle": {"state": "start"}, "flow-id": {"afi": "ipv4", "src-ip": "127.0.0.2",)"
      R"( "dst-ip": "127.0.0.3", "protocol": "tcp", "src-port": 1, "dst-port": 2},)"
      R"( "context": {"experiment-id": 2, "activity-id": 9}})");
  ASSERT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.flow.origin, FlowOrigin::kRemote);
}

TEST(FlowOrigin, ScannedConnectionsAreLocal) {
  // netlink, netstat and iperf all report through the ConnectionTracker.
  scanner::ConnectionFilter filter;
  filter.ignore_private = false;
  scanner::ConnectionTracker t(filter, true, [](const scanner::Connection&, bool&) {
    return std::optional<scanner::Tag>(scanner::Tag{2, 9});
  });
  scanner::Connection c;
  c.local = *IpAddress::parse("192.0.2.1");
  c.remote = *IpAddress::parse("192.0.2.2");
  c.local_port = 40000;
  c.remote_port = 443;
  c.state = netlink::kTcpEstablished;
  c.inode = 1;
  std::vector<FlowID> out;
  t.observe(c, Clock::now(), out);
  t.finish(Clock::now(), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].origin, FlowOrigin::kLocal);
  out.clear();
  t.finish(Clock::now(), out);  // gone: the end
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].state, FlowState::kEnd);
  EXPECT_EQ(out[0].origin, FlowOrigin::kLocal);
}

collector::Field field(std::uint16_t id, std::uint64_t u) {
  collector::Field f;
  f.id = id;
  f.value.kind = collector::ValueKind::kUnsigned;
  f.value.u = u;
  return f;
}

collector::Field address(std::uint16_t id, const char* ip) {
  collector::Field f;
  f.id = id;
  f.value.kind = collector::ValueKind::kIpv6;
  f.value.ip = *IpAddress::parse(ip);
  return f;
}

TEST(FlowOrigin, ExportedFlowsAreObserved) {
  collector::FlowRecord r;
  r.version = 10;
  r.fields = {field(4, 6),
              field(7, 40000),
              field(11, 5201),
              address(27, "2001:db8::1"),
              address(28, "2001:db8::2"),
              field(31, 0x10024)};  // atlas/Debug in flowLabelIPv6
  netflow::FlowTracker t({}, netflow::LabelPolicy(netflow::LabelTrust::kAny, {}),
                         std::chrono::seconds(60), 10);
  std::vector<FlowID> out;
  auto now = Clock::now();
  ASSERT_TRUE(t.observe(r, now, nullptr, out).tag);
  t.expire(now + std::chrono::seconds(61), out);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& f : out) EXPECT_EQ(f.origin, FlowOrigin::kObserved) << to_string(f.state);
  EXPECT_EQ(out[0].experiment, 2);
  EXPECT_EQ(netflow::flow_of(r)->origin, FlowOrigin::kObserved);
}

// ---------------------------------------------------------------------------------------------
// The backends' rules.

TEST(MarkPolicy, OnlyLocalFlowsAreMarked) {
  EXPECT_TRUE(ebpf::marks(FlowOrigin::kLocal));
  EXPECT_FALSE(ebpf::marks(FlowOrigin::kRemote));
  EXPECT_FALSE(ebpf::marks(FlowOrigin::kObserved));
}

using udp_firefly::route_firefly;
using udp_firefly::SuppressReason;

TEST(FireflyRoute, LocalFlowsGoToThePeerAndTheCollector) {
  for (bool fwd : {false, true}) {
    auto r = route_firefly(FlowOrigin::kLocal, {.collector = true, .forward_observed = fwd});
    EXPECT_TRUE(r.to_flow);
    EXPECT_TRUE(r.to_collector);
    EXPECT_FALSE(r.flow_withheld);
    EXPECT_FALSE(r.collector_withheld);
    r = route_firefly(FlowOrigin::kLocal, {.collector = false, .forward_observed = fwd});
    EXPECT_TRUE(r.to_flow);
    EXPECT_FALSE(r.to_collector);
    EXPECT_FALSE(r.collector_withheld) << "no collector is a choice, not a suppression";
  }
}

TEST(FireflyRoute, RemoteFlowsGoToTheCollectorOnly) {
  for (bool fwd : {false, true}) {
    auto r = route_firefly(FlowOrigin::kRemote, {.collector = true, .forward_observed = fwd});
    EXPECT_FALSE(r.to_flow);
    EXPECT_TRUE(r.to_collector);
    EXPECT_EQ(r.flow_withheld, SuppressReason::kFlowAddress);
    EXPECT_FALSE(r.collector_withheld);
    r = route_firefly(FlowOrigin::kRemote, {.collector = false, .forward_observed = fwd});
    EXPECT_FALSE(r.sends());
    EXPECT_EQ(r.flow_withheld, SuppressReason::kFlowAddress);
    EXPECT_EQ(r.collector_withheld, SuppressReason::kNoCollector);
  }
}

TEST(FireflyRoute, ObservedFlowsGoToTheCollectorOnlyWhenForwarded) {
  auto r = route_firefly(FlowOrigin::kObserved, {.collector = true, .forward_observed = false});
  EXPECT_FALSE(r.sends());
  EXPECT_EQ(r.flow_withheld, SuppressReason::kFlowAddress);
  EXPECT_EQ(r.collector_withheld, SuppressReason::kForwardObserved);
  r = route_firefly(FlowOrigin::kObserved, {.collector = true, .forward_observed = true});
  EXPECT_FALSE(r.to_flow);
  EXPECT_TRUE(r.to_collector);
  EXPECT_EQ(r.flow_withheld, SuppressReason::kFlowAddress);
  EXPECT_FALSE(r.collector_withheld);
  r = route_firefly(FlowOrigin::kObserved, {.collector = false, .forward_observed = true});
  EXPECT_FALSE(r.sends());
  EXPECT_EQ(r.collector_withheld, SuppressReason::kNoCollector);
}

TEST(FireflyRoute, AnUnknownOriginValueSendsNothing) {
  auto r = route_firefly(static_cast<FlowOrigin>(7), {.collector = true, .forward_observed = true});
  EXPECT_FALSE(r.sends());
}

TEST(FireflyRoute, ReasonNames) {
  EXPECT_EQ(udp_firefly::to_string(SuppressReason::kFlowAddress), "flow_address");
  EXPECT_EQ(udp_firefly::to_string(SuppressReason::kForwardObserved), "forward_observed");
  EXPECT_EQ(udp_firefly::to_string(SuppressReason::kNoCollector), "no_collector");
}

}  // namespace
}  // namespace flowd
