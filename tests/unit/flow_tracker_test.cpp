// SPDX-License-Identifier: Apache-2.0
// Observed flows (netflow/sflow plugins): when a flow label is a tag (LabelPolicy), and the
// tracker's start/end events, label stability, rules, idle expiry and max_flows overflow.
#include <gtest/gtest.h>

#include <sys/socket.h>

#include "core/registry_loader.hpp"
#include "flowd/scitags_label.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "plugins/netflow/observed_metrics.hpp"
#include "record_fields.hpp"

namespace flowd::netflow {
namespace {

std::shared_ptr<const ScitagsRegistry> shipped_registry() {
  std::string error;
  auto r = ScitagsRegistry::parse(registry_snapshot_json(), error);
  EXPECT_TRUE(r) << error;
  return r;
}

using test::address_field;
using test::unsigned_field;

// An IPFIX-like record of a TCP flow src:40000 -> dst:5201, with a flow label when given.
collector::FlowRecord record(const char* src, const char* dst, std::optional<std::uint32_t> label,
                             std::optional<std::uint64_t> end_reason = std::nullopt) {
  collector::FlowRecord r;
  r.version = 10;
  const bool v6 = std::string_view(src).find(':') != std::string_view::npos;
  r.fields.push_back(address_field(v6 ? 27 : 8, src));
  r.fields.push_back(address_field(v6 ? 28 : 12, dst));
  r.fields.push_back(unsigned_field(4, 6));
  r.fields.push_back(unsigned_field(7, 40000));
  r.fields.push_back(unsigned_field(11, 5201));
  r.fields.push_back(unsigned_field(1, 1000));
  if (label) r.fields.push_back(unsigned_field(31, *label));
  if (end_reason) r.fields.push_back(unsigned_field(136, *end_reason));
  return r;
}

const TimePoint kT0 = TimePoint{std::chrono::seconds{1795356761}};
// atlas (2) / Debug (9) is registered; (2, 63) and (300, 1) are not.
const std::uint32_t kAtlasDebug = make_label(2, 9, 0x5);
const std::uint32_t kAtlasDebugOtherEntropy = make_label(2, 9, 0x1A);
const std::uint32_t kUnregistered = make_label(2, 63, 0);

TEST(LabelPolicy, RegisteredPairsOnly) {
  auto reg = shipped_registry();
  LabelPolicy p(LabelTrust::kRegistered, {});
  const auto a = *IpAddress::parse("2001:db8::1"), b = *IpAddress::parse("2001:db8::2");
  EXPECT_EQ(p.classify(kAtlasDebug, a, b, reg), LabelResult::kTag);
  EXPECT_EQ(p.classify(kUnregistered, a, b, reg), LabelResult::kUnregistered);
  EXPECT_EQ(p.classify(make_label(300, 1, 0), a, b, reg), LabelResult::kUnregistered);
  EXPECT_EQ(p.classify(0, a, b, reg), LabelResult::kNone);
  EXPECT_EQ(p.classify(kLabelEntropyMask, a, b, reg), LabelResult::kNone);  // entropy bits only
  EXPECT_EQ(reg->pair_count(), 114u);  // the figure the README's false-tag rate is computed from
}

TEST(LabelPolicy, AnyAndOff) {
  auto reg = shipped_registry();
  const auto a = *IpAddress::parse("2001:db8::1"), b = *IpAddress::parse("2001:db8::2");
  LabelPolicy any(LabelTrust::kAny, {});
  EXPECT_EQ(any.classify(kUnregistered, a, b, reg), LabelResult::kTag);
  EXPECT_EQ(any.classify(0, a, b, reg), LabelResult::kNone);
  LabelPolicy off(LabelTrust::kOff, {});
  EXPECT_EQ(off.classify(kAtlasDebug, a, b, reg), LabelResult::kNone);
}

TEST(LabelPolicy, LabelNetworks) {
  auto reg = shipped_registry();
  LabelPolicy p(LabelTrust::kRegistered, {*net::parse_prefix("fd00:1::/32")});
  EXPECT_EQ(p.classify(kAtlasDebug, *IpAddress::parse("2001:db8::1"),
                       *IpAddress::parse("fd00:1::9"), reg),
            LabelResult::kTag);
  EXPECT_EQ(p.classify(kAtlasDebug, *IpAddress::parse("fd00:1::9"),
                       *IpAddress::parse("2001:db8::1"), reg),
            LabelResult::kTag);
  EXPECT_EQ(p.classify(kAtlasDebug, *IpAddress::parse("2001:db8::1"),
                       *IpAddress::parse("2001:db8::2"), reg),
            LabelResult::kOutside);
  // Unregistered is said first: the network does not make a random label more credible.
  EXPECT_EQ(p.classify(kUnregistered, *IpAddress::parse("2001:db8::1"),
                       *IpAddress::parse("2001:db8::2"), reg),
            LabelResult::kUnregistered);
}

TEST(LabelPolicy, ARegistryReloadIsSeen) {
  std::string error;
  auto small = ScitagsRegistry::parse(
      R"({"experiments":[{"expName":"x","expId":7,"activities":[{"activityName":"a","activityId":3}]}]})",
      error);
  ASSERT_TRUE(small) << error;
  auto reg = shipped_registry();
  LabelPolicy p(LabelTrust::kRegistered, {});
  const auto a = *IpAddress::parse("2001:db8::1");
  EXPECT_EQ(p.classify(kAtlasDebug, a, a, reg), LabelResult::kTag);
  EXPECT_EQ(p.classify(kAtlasDebug, a, a, small), LabelResult::kUnregistered);
  EXPECT_EQ(p.classify(make_label(7, 3, 0), a, a, small), LabelResult::kTag);
}

class Tracker : public ::testing::Test {
 protected:
  std::shared_ptr<const ScitagsRegistry> reg = shipped_registry();
  FlowTracker tracker{{}, LabelPolicy(LabelTrust::kRegistered, {}), std::chrono::seconds(60), 100};
  std::vector<FlowID> events;
  Observation see(const collector::FlowRecord& r, TimePoint t = kT0) {
    return tracker.observe(r, t, reg, events);
  }
};

TEST_F(Tracker, RandomLabelsMakeNoEvents) {
  for (int i = 0; i < 200; ++i) {
    auto o = see(record("2001:db8::1", "2001:db8::2", kUnregistered));
    EXPECT_EQ(o.label, LabelResult::kUnregistered);
    EXPECT_FALSE(o.tag);
  }
  EXPECT_TRUE(events.empty());
}

TEST_F(Tracker, ARegisteredLabelStartsAndEndReasonEnds) {
  auto o = see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));
  EXPECT_EQ(o.label, LabelResult::kTag);
  ASSERT_TRUE(o.tag);
  EXPECT_EQ(o.tag->experiment, 2u);
  EXPECT_EQ(o.tag->activity, 9u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].state, FlowState::kStart);
  EXPECT_EQ(events[0].experiment, 2);
  EXPECT_EQ(events[0].activity, 9);
  see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));  // an active-timeout report: nothing new
  EXPECT_EQ(events.size(), 1u);
  see(record("2001:db8::1", "2001:db8::2", kAtlasDebug, 3));  // end of flow detected
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].state, FlowState::kEnd);
  EXPECT_EQ(tracker.size(), 0u);
}

TEST_F(Tracker, ALabelThatChangesStopsCountingAsATag) {
  see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));
  ASSERT_EQ(events.size(), 1u);
  // Same pair, other entropy bits: the label is not the one the flow had, so it is not the sender's
  // tag.
  auto o = see(record("2001:db8::1", "2001:db8::2", kAtlasDebugOtherEntropy));
  EXPECT_EQ(o.label, LabelResult::kUnstable);
  EXPECT_FALSE(o.tag);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].state, FlowState::kEnd);
  // Back to the first label: still unstable, no new start.
  o = see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));
  EXPECT_EQ(o.label, LabelResult::kUnstable);
  EXPECT_EQ(events.size(), 2u);
}

// The check that settles untagged records without a table lookup must still see a tracked flow
// whose label turns into one that is not a tag, and must forget a flow that ended.
TEST_F(Tracker, AnUnregisteredLabelOnATrackedFlowIsUnstable) {
  see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));
  see(record("2001:db8::3", "2001:db8::4", kAtlasDebug));
  ASSERT_EQ(events.size(), 2u);
  auto o = see(record("2001:db8::5", "2001:db8::6", kUnregistered));  // same ports, other flow
  EXPECT_EQ(o.label, LabelResult::kUnregistered);
  EXPECT_EQ(events.size(), 2u);
  o = see(record("2001:db8::1", "2001:db8::2", kUnregistered));
  EXPECT_EQ(o.label, LabelResult::kUnstable);
  EXPECT_FALSE(o.tag);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].state, FlowState::kEnd);
  see(record("2001:db8::3", "2001:db8::4", kAtlasDebug, 3));  // ends
  see(record("2001:db8::1", "2001:db8::2", kAtlasDebug, 3));  // ends (no second end event)
  EXPECT_EQ(tracker.size(), 0u);
  EXPECT_EQ(events.size(), 4u);
  o = see(record("2001:db8::1", "2001:db8::2", kUnregistered));  // forgotten: a new flow
  EXPECT_EQ(o.label, LabelResult::kUnregistered);
  o = see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));
  EXPECT_EQ(o.label, LabelResult::kTag);
  EXPECT_EQ(events.size(), 5u);
}

TEST_F(Tracker, UntaggedFlowsAreNotRemembered) {
  // A router's untagged IPv6 traffic (random labels) must not fill max_flows: only tags are
  // tracked.
  for (int i = 0; i < 10; ++i)
    see(record(("2001:db8::" + std::to_string(i + 10)).c_str(), "2001:db8::2", kUnregistered));
  EXPECT_EQ(tracker.size(), 0u);
  EXPECT_TRUE(events.empty());
}

TEST_F(Tracker, IdleFlowsEnd) {
  see(record("2001:db8::1", "2001:db8::2", kAtlasDebug));
  see(record("2001:db8::3", "2001:db8::4", kUnregistered));
  EXPECT_EQ(tracker.size(), 1u);
  tracker.expire(kT0 + std::chrono::seconds(59), events);
  EXPECT_EQ(events.size(), 1u);
  tracker.expire(kT0 + std::chrono::seconds(61), events);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].state, FlowState::kEnd);
  EXPECT_EQ(tracker.size(), 0u);
}

TEST_F(Tracker, RulesTagUnlabelledFlows) {
  std::string error;
  auto rule = parse_rule("192.0.2.0/24:5201 cms 4", *reg, error);
  ASSERT_TRUE(rule) << error;
  FlowTracker t({*rule}, LabelPolicy(LabelTrust::kRegistered, {}), std::chrono::seconds(60), 100);
  auto o = t.observe(record("192.0.2.1", "192.0.2.2", std::nullopt), kT0, reg, events);
  EXPECT_FALSE(o.label);
  ASSERT_TRUE(o.tag);
  EXPECT_EQ(o.tag->experiment, 3u);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].activity, 4);
  // Untagged and unmatched: no event, no table entry.
  o = t.observe(record("198.51.100.1", "198.51.100.2", std::nullopt), kT0, reg, events);
  EXPECT_FALSE(o.tag);
  EXPECT_EQ(t.size(), 1u);
}

TEST_F(Tracker, OverflowIsCounted) {
  FlowTracker small({}, LabelPolicy(LabelTrust::kRegistered, {}), std::chrono::seconds(60), 2);
  small.observe(record("2001:db8::1", "2001:db8::2", kAtlasDebug), kT0, reg, events);
  small.observe(record("2001:db8::3", "2001:db8::4", kAtlasDebug), kT0, reg, events);
  auto o = small.observe(record("2001:db8::5", "2001:db8::6", kAtlasDebug), kT0, reg, events);
  EXPECT_EQ(o.label, LabelResult::kTag);
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(small.overflow(), 1u);
  EXPECT_EQ(small.size(), 2u);
}

TEST(VolumeBatch, SumsPerSourceAndTag) {
  VolumeBatch b;
  b.add(ObservedSource::kIpfix, LabelTag{2, 9}, 100, 1);
  b.add(ObservedSource::kIpfix, LabelTag{2, 9}, 50, 2);
  b.add(ObservedSource::kIpfix, std::nullopt, 7, 1);
  b.add(ObservedSource::kNetflow, LabelTag{2, 9}, 1, 1);
  ASSERT_EQ(b.items().size(), 3u);
  EXPECT_EQ(b.items()[0].bytes, 150);
  EXPECT_EQ(b.items()[0].packets, 3);
}

}  // namespace
}  // namespace flowd::netflow
