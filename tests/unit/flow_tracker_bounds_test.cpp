// SPDX-License-Identifier: Apache-2.0
// The netflow FlowTracker's table at its bound (max_flows): new tagged flows are refused and
// counted while the tracked ones keep their events; a flow's end (flowEndReason, idle expiry,
// the plugin stopping) gives its place back; ends come oldest flow first.
#include <gtest/gtest.h>

#include "core/registry_loader.hpp"
#include "flowd/scitags_label.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "record_fields.hpp"

namespace flowd::netflow {
namespace {

using test::address_field;
using test::unsigned_field;

const std::uint32_t kAtlasDebug = make_label(2, 9, 0x5);
const TimePoint kT0 = TimePoint{std::chrono::seconds{1795356761}};

// An IPFIX record of TCP flow 2001:db8::1:SPORT -> 2001:db8::2:5201 labelled atlas/Debug.
collector::FlowRecord record(std::uint16_t sport, std::optional<std::uint64_t> end_reason = {}) {
  collector::FlowRecord r;
  r.version = 10;
  r.fields.push_back(address_field(27, "2001:db8::1"));
  r.fields.push_back(address_field(28, "2001:db8::2"));
  r.fields.push_back(unsigned_field(4, 6));
  r.fields.push_back(unsigned_field(7, sport));
  r.fields.push_back(unsigned_field(11, 5201));
  r.fields.push_back(unsigned_field(31, kAtlasDebug));
  if (end_reason) r.fields.push_back(unsigned_field(136, *end_reason));
  return r;
}

class Bounded : public ::testing::Test {
 protected:
  Bounded() {
    std::string error;
    reg = ScitagsRegistry::parse(registry_snapshot_json(), error);
  }
  void see(std::uint16_t sport, TimePoint t = kT0, std::optional<std::uint64_t> end = {}) {
    tracker.observe(record(sport, end), t, reg, events);
  }
  std::vector<std::uint16_t> ports(FlowState state) const {
    std::vector<std::uint16_t> out;
    for (const auto& e : events)
      if (e.state == state) out.push_back(e.src_port);
    return out;
  }
  std::shared_ptr<const ScitagsRegistry> reg;
  FlowTracker tracker{{}, LabelPolicy(LabelTrust::kRegistered, {}), std::chrono::seconds(60), 3};
  std::vector<FlowID> events;
};

TEST_F(Bounded, RefusesNewFlowsAndKeepsTheTrackedOnes) {
  for (std::uint16_t p = 1; p <= 5; ++p) see(p);
  EXPECT_EQ(tracker.size(), 3u);
  EXPECT_EQ(tracker.overflow(), 2u);
  EXPECT_EQ(ports(FlowState::kStart), (std::vector<std::uint16_t>{1, 2, 3}));
  // The tracked flows go on: no second start, no spurious end.
  for (std::uint16_t p = 1; p <= 3; ++p) see(p, kT0 + std::chrono::seconds(1));
  EXPECT_EQ(events.size(), 3u);
  EXPECT_EQ(tracker.overflow(), 2u);
  // A refused flow's next record is refused (and counted) again.
  see(4);
  EXPECT_EQ(tracker.overflow(), 3u);
}

TEST_F(Bounded, AnEndGivesThePlaceBack) {
  for (std::uint16_t p = 1; p <= 3; ++p) see(p);
  see(2, kT0, 3);  // flowEndReason 3: end of flow detected
  EXPECT_EQ(ports(FlowState::kEnd), (std::vector<std::uint16_t>{2}));
  EXPECT_EQ(tracker.size(), 2u);
  see(4);
  EXPECT_EQ(tracker.overflow(), 0u);
  EXPECT_EQ(ports(FlowState::kStart), (std::vector<std::uint16_t>{1, 2, 3, 4}));
  // An active-timeout report (2) is no end.
  see(4, kT0, 2);
  EXPECT_EQ(tracker.size(), 3u);
}

TEST_F(Bounded, IdleExpiryEndsOldestFirstAndMakesRoom) {
  see(3);
  see(1, kT0 + std::chrono::seconds(10));
  see(2, kT0 + std::chrono::seconds(20));
  see(9);  // refused
  EXPECT_EQ(tracker.overflow(), 1u);
  tracker.expire(kT0 + std::chrono::seconds(75), events);  // 3 and 1 idle for >= 60 s
  EXPECT_EQ(ports(FlowState::kEnd), (std::vector<std::uint16_t>{3, 1}));
  EXPECT_EQ(tracker.size(), 1u);
  see(9, kT0 + std::chrono::seconds(75));
  EXPECT_EQ(ports(FlowState::kStart).back(), 9);
  tracker.end_all(kT0 + std::chrono::seconds(80), events);
  EXPECT_EQ(ports(FlowState::kEnd), (std::vector<std::uint16_t>{3, 1, 2, 9}));
  EXPECT_EQ(tracker.size(), 0u);
  // After end_all the table is empty and takes new flows again.
  see(5, kT0 + std::chrono::seconds(81));
  EXPECT_EQ(tracker.size(), 1u);
}

}  // namespace
}  // namespace flowd::netflow
