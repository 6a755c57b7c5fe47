// SPDX-License-Identifier: Apache-2.0
// The daemon's status board (core/status_board.hpp): the active flows the bus reports, the marker's
// probe, the registry's source and age.
#include "core/status_board.hpp"

#include <gtest/gtest.h>

#include "core/registry_loader.hpp"

namespace flowd {
namespace {

FlowID make_flow(FlowState state, std::uint16_t src_port, FlowOrigin origin = FlowOrigin::kLocal) {
  FlowID f;
  f.state = state;
  f.src = *IpAddress::parse("2001:db8::1");
  f.dst = *IpAddress::parse("2001:db8::2");
  f.src_port = src_port;
  f.dst_port = 443;
  f.experiment = 2;
  f.activity = 9;
  f.origin = origin;
  return f;
}

std::shared_ptr<const ScitagsRegistry> snapshot() {
  std::string error;
  auto r = ScitagsRegistry::parse(registry_snapshot_json(), error);
  EXPECT_TRUE(r) << error;
  return r;
}

class FakeMarker final : public MarkerProbe {
 public:
  std::vector<MarkerInterface> interfaces() const override { return {{"eth0", true}}; }
  bool holds(const FlowKey& key) const override { return key.src_port == 1; }
  std::size_t entries() const override { return 1; }
};

TEST(StatusBoard, StartsEnterEndsLeaveOriginsApart) {
  RegistryHandle registry(snapshot());
  StatusBoard board(registry);
  std::vector<FlowID> batch{make_flow(FlowState::kStart, 1), make_flow(FlowState::kStart, 2),
                            make_flow(FlowState::kStart, 1, FlowOrigin::kRemote)};
  board.record(batch, "np_api");
  auto flows = board.active_flows(10);
  ASSERT_EQ(flows.size(), 3u);
  EXPECT_EQ(flows[0].key.src_port, 1);
  EXPECT_STREQ(flows[0].plugin, "np_api");
  EXPECT_FALSE(flows[0].marked) << "no marker: unknown, not false";
  // An end of the local flow leaves the remote report of the same 5-tuple alone.
  std::vector<FlowID> end{make_flow(FlowState::kEnd, 1)};
  board.record(end, "np_api");
  flows = board.active_flows(10);
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_EQ(flows[0].key.src_port, 2);
  EXPECT_EQ(flows[1].origin, FlowOrigin::kRemote);
  EXPECT_EQ(board.active_flows(1).size(), 1u);
  EXPECT_EQ(board.report().active_flows, 2u);
}

// The flow journal's connections to start again are each plugin's, with their socket cookie, and
// taken once (a reload's successor inherits what its predecessor started instead).
TEST(StatusBoard, ConnectionsToStartAgainAreTakenOncePerPlugin) {
  RegistryHandle registry(snapshot());
  StatusBoard board(registry);
  std::vector<FlowID> restarts{make_flow(FlowState::kStart, 1), make_flow(FlowState::kStart, 2),
                               make_flow(FlowState::kStart, 3)};
  restarts[0].plugin = restarts[1].plugin = "kernel";
  restarts[1].socket_cookie = 77;
  restarts[2].plugin = "netlink";
  board.set_restarts(restarts);
  auto kernel = board.take_restarts("kernel");
  ASSERT_EQ(kernel.size(), 2u);
  EXPECT_EQ(kernel[0].key, FlowKey::of(restarts[0]));
  EXPECT_EQ(kernel[1].socket_cookie, 77u);
  EXPECT_TRUE(board.take_restarts("kernel").empty()) << "taken once";
  EXPECT_EQ(board.take_restarts("netlink").size(), 1u);
  EXPECT_TRUE(board.take_restarts("iperf").empty());
}

TEST(StatusBoard, TheMarkerSaysWhichFlowsItHoldsUntilItStops) {
  RegistryHandle registry(snapshot());
  StatusBoard board(registry);
  std::vector<FlowID> batch{make_flow(FlowState::kStart, 1), make_flow(FlowState::kStart, 2)};
  board.record(batch, "api");
  auto marker = std::make_shared<FakeMarker>();
  board.set_marker(marker);
  auto flows = board.active_flows(10);
  ASSERT_EQ(flows.size(), 2u);
  EXPECT_EQ(flows[0].marked, true);
  EXPECT_EQ(flows[1].marked, false);
  auto r = board.report();
  EXPECT_TRUE(r.marker_running);
  ASSERT_EQ(r.marker_interfaces.size(), 1u);
  EXPECT_EQ(r.marker_interfaces[0].name, "eth0");
  // A predecessor's stop does not clear its successor's probe.
  FakeMarker other;
  board.clear_marker(&other);
  EXPECT_TRUE(board.report().marker_running);
  board.clear_marker(marker.get());
  EXPECT_FALSE(board.report().marker_running);
}

// Issue 15: what a pinned map kept from a killed flowd, reported by no plugin, is listed after the
// plugins' flows (once: a plugin's report of the same 5-tuple is listed as the plugin's).
class KeepingMarker final : public MarkerProbe {
 public:
  std::vector<MarkerInterface> interfaces() const override { return {}; }
  bool holds(const FlowKey&) const override { return true; }
  std::size_t entries() const override { return 2; }
  std::vector<ActiveFlow> kept_flows() const override {
    std::vector<ActiveFlow> out;
    for (std::uint16_t port : {1, 3}) {
      const FlowID f = make_flow(FlowState::kStart, port);
      out.push_back(ActiveFlow{FlowKey::of(f), FlowOrigin::kLocal, 3, 4, "ebpf", Clock::now(), {}});
    }
    return out;
  }
  std::size_t kept_flow_count() const override { return 2; }
};

TEST(StatusBoard, TheFlowsAPinnedMapKeptAreListedAfterThePlugins) {
  RegistryHandle registry(snapshot());
  StatusBoard board(registry);
  std::vector<FlowID> batch{make_flow(FlowState::kStart, 1), make_flow(FlowState::kStart, 2)};
  board.record(batch, "api");
  board.set_marker(std::make_shared<KeepingMarker>());
  auto flows = board.active_flows(10);
  ASSERT_EQ(flows.size(), 3u);
  EXPECT_STREQ(flows[0].plugin, "api");
  EXPECT_STREQ(flows[1].plugin, "api");
  EXPECT_STREQ(flows[2].plugin, "ebpf");
  EXPECT_EQ(flows[2].key.src_port, 3);
  EXPECT_EQ(flows[2].experiment, 3);
  EXPECT_EQ(flows[2].marked, true);
  EXPECT_EQ(board.active_flows(2).size(), 2u);
  EXPECT_EQ(board.active_flow_count(), 3u) << "as listed: GET /v1/flows' total";
}

TEST(StatusBoard, RegistrySourceAndLoadTime) {
  auto reg = snapshot();
  // Fetched an hour ago, then a refresh's 304 confirms it: the age starts again from then.
  const auto fetched = Clock::now() - std::chrono::hours(1);
  RegistryHandle registry(reg, fetched);
  StatusBoard board(registry);
  auto r = board.report();
  EXPECT_EQ(r.registry_source, reg->source());
  EXPECT_EQ(
      std::chrono::duration_cast<std::chrono::milliseconds>(r.registry_loaded - fetched).count(),
      0);
  EXPECT_GT(r.registry_experiments, 0u);
  const auto confirmed = Clock::now();
  registry.confirm(confirmed);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(board.report().registry_loaded -
                                                                  confirmed)
                .count(),
            0);
}

}  // namespace
}  // namespace flowd
