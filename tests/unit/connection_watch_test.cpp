// SPDX-License-Identifier: Apache-2.0
// The bookkeeping of the check of np_api's and the api's TCP flows against the kernel's sockets
// (plugins/scanner/connection_watch.hpp; issue 15 E6): which flows a check ends, and when.
#include "plugins/scanner/connection_watch.hpp"

#include <gtest/gtest.h>

namespace flowd::scanner {
namespace {

using namespace std::chrono_literals;

IpAddress ip(const char* text) {
  return *IpAddress::parse(text);
}

FlowID flow(FlowState state, const char* src, std::uint16_t sport, const char* dst,
            std::uint16_t dport, Protocol p = Protocol::kTcp) {
  FlowID f;
  f.state = state;
  f.protocol = p;
  f.src = ip(src);
  f.dst = ip(dst);
  f.src_port = sport;
  f.dst_port = dport;
  f.experiment = 2;
  f.activity = 9;
  f.origin = FlowOrigin::kLocal;
  f.start_time = TimePoint{} + 1s;
  return f;
}

bool all_local(const IpAddress&) {
  return true;
}
bool none_local(const IpAddress&) {
  return false;
}

struct Check {
  ReportedConnections& flows;
  // One check that finds the given sockets open (local end first).
  std::vector<ReportedConnections::Expired> operator()(
      std::vector<std::tuple<const char*, std::uint16_t, const char*, std::uint16_t>> open,
      TimePoint now = TimePoint{} + 100s, bool (*is_local)(const IpAddress&) = all_local) {
    flows.begin_check();
    for (auto& [l, lp, r, rp] : open) flows.saw_open(ip(l), lp, ip(r), rp);
    std::vector<ReportedConnections::Expired> out;
    flows.finish_check(now, is_local, out);
    return out;
  }
};

TEST(ReportedConnections, AConnectionFoundOpenThenGoneIsEndedAtTheChecksTime) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "2001:db8::1", 40000, "2001:db8::2", 443);
  flows.note({&start, 1});
  EXPECT_TRUE(check({{"2001:db8::1", 40000, "2001:db8::2", 443}}).empty());
  auto ended = check({}, TimePoint{} + 200s);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].reason, Expiry::kConnectionClosed);
  EXPECT_EQ(ended[0].end.state, FlowState::kEnd);
  EXPECT_EQ(ended[0].end.end_time, TimePoint{} + 200s);
  EXPECT_EQ(ended[0].end.start_time, start.start_time);
  EXPECT_EQ(FlowKey::of(ended[0].end), FlowKey::of(start));
  EXPECT_EQ(ended[0].end.experiment, 2);
  EXPECT_EQ(ended[0].end.activity, 9);
  EXPECT_EQ(flows.size(), 0u);
  EXPECT_TRUE(check({}).empty());  // ended once
}

TEST(ReportedConnections, AnOpenConnectionIsNeverEnded) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "192.0.2.1", 40000, "192.0.2.2", 443);
  flows.note({&start, 1});
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(check({{"192.0.2.1", 40000, "192.0.2.2", 443}}).empty()) << i;
  EXPECT_EQ(flows.size(), 1u);
}

// A tool may announce a flow before its connect(): not ended by the first check that misses it.
TEST(ReportedConnections, AFlowNeverFoundOpenIsEndedOnlyAtTheSecondCheckInARow) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "192.0.2.1", 40000, "192.0.2.2", 443);
  flows.note({&start, 1});
  EXPECT_TRUE(check({}).empty());
  auto ended = check({});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].reason, Expiry::kConnectionNotFound);
}

TEST(ReportedConnections, AFlowAnnouncedBeforeItsConnectionIsFollowedOnceItOpens) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "192.0.2.1", 40000, "192.0.2.2", 443);
  flows.note({&start, 1});
  EXPECT_TRUE(check({}).empty());  // not connected yet
  EXPECT_TRUE(check({{"192.0.2.1", 40000, "192.0.2.2", 443}}).empty());
  EXPECT_TRUE(check({{"192.0.2.1", 40000, "192.0.2.2", 443}}).empty());
  auto ended = check({});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].reason, Expiry::kConnectionClosed);
}

// A tool in a container with a network namespace of its own: flowd cannot list its sockets.
TEST(ReportedConnections, AFlowOfAnotherNetworkNamespaceIsLeftAlone) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "10.88.0.5", 40000, "192.0.2.2", 443);
  flows.note({&start, 1});
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(check({}, TimePoint{} + 100s, none_local).empty()) << i;
  EXPECT_EQ(flows.size(), 1u);
}

// The tool names the ends in its own order: the peer first is the same connection.
TEST(ReportedConnections, TheConnectionIsFoundWhicheverEndTheToolNamedFirst) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "2001:db8::2", 443, "2001:db8::1", 40000);
  flows.note({&start, 1});
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(check({{"2001:db8::1", 40000, "2001:db8::2", 443}}).empty()) << i;
}

// Keyed as the arbiter and the marker key a connection: an IPv4-mapped address is its IPv4 one
// (sock_diag lists a mapped socket as IPv4), and the tool's end may name another local address.
TEST(ReportedConnections, KeyedAsTheArbiterKeysAConnection) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "::ffff:192.0.2.1", 40000, "::ffff:192.0.2.2", 443);
  flows.note({&start, 1});
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(check({{"192.0.2.1", 40000, "192.0.2.2", 443}}).empty()) << i;
  const FlowID end = flow(FlowState::kEnd, "192.0.2.7", 40000, "192.0.2.2", 443);
  flows.note({&end, 1});
  EXPECT_EQ(flows.size(), 0u);
}

TEST(ReportedConnections, TheToolsEndAndUdpAndOtherOriginsAreNotChecked) {
  ReportedConnections flows;
  Check check{flows};
  FlowID remote = flow(FlowState::kStart, "192.0.2.1", 1, "192.0.2.2", 2);
  remote.origin = FlowOrigin::kRemote;
  const FlowID in[] = {
      flow(FlowState::kStart, "192.0.2.1", 40000, "192.0.2.2", 443),
      flow(FlowState::kEnd, "192.0.2.1", 40000, "192.0.2.2", 443),
      flow(FlowState::kStart, "192.0.2.1", 40001, "192.0.2.2", 443, Protocol::kUdp),
      flow(FlowState::kOngoing, "192.0.2.1", 40002, "192.0.2.2", 443),
      remote,
  };
  flows.note(in);
  EXPECT_EQ(flows.size(), 0u);
  EXPECT_TRUE(check({}).empty());
  EXPECT_TRUE(check({}).empty());
}

TEST(ReportedConnections, ARepeatedStartKeepsWhatTheChecksFound) {
  ReportedConnections flows;
  Check check{flows};
  const FlowID start = flow(FlowState::kStart, "192.0.2.1", 40000, "192.0.2.2", 443);
  flows.note({&start, 1});
  EXPECT_TRUE(check({{"192.0.2.1", 40000, "192.0.2.2", 443}}).empty());
  flows.note({&start, 1});
  auto ended = check({});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].reason, Expiry::kConnectionClosed);
}

// try15g 7: a reload that restarts np_api hands its table to the successor
// (ConnectionWatch::shelve, inherit), which keeps only the flows the daemon still lists: one found
// open before the reload ends as closed at the first check after it that misses it.
TEST(ReportedConnections, ATableHandedOnKeepsWhatTheChecksFoundOfTheFlowsStillListed) {
  ReportedConnections before;
  Check check_before{before};
  const FlowID open = flow(FlowState::kStart, "192.0.2.1", 40000, "192.0.2.2", 443);
  const FlowID gone = flow(FlowState::kStart, "192.0.2.1", 40001, "192.0.2.2", 443);
  before.note({&open, 1});
  before.note({&gone, 1});
  EXPECT_TRUE(check_before({{"192.0.2.1", 40000, "192.0.2.2", 443}}).empty());
  ReportedConnections after(std::move(before));
  after.keep_only({&open, 1});  // `gone` ended meanwhile: not the daemon's any more
  EXPECT_EQ(after.size(), 1u);
  after.note({&open, 1});
  Check check{after};
  auto ended = check({});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].reason, Expiry::kConnectionClosed);
  EXPECT_EQ(FlowKey::of(ended[0].end), FlowKey::of(open));
}

TEST(ReportedConnections, BoundedTheOldestForgotten) {
  ReportedConnections flows(2);
  for (std::uint16_t port = 1; port <= 3; ++port) {
    const FlowID start = flow(FlowState::kStart, "192.0.2.1", port, "192.0.2.2", 443);
    flows.note({&start, 1});
  }
  EXPECT_EQ(flows.size(), 2u);
  EXPECT_EQ(flows.overflow(), 1u);
}

TEST(ReportedConnections, ExpiryNames) {
  EXPECT_EQ(to_string(Expiry::kConnectionClosed), "connection_closed");
  EXPECT_EQ(to_string(Expiry::kConnectionNotFound), "connection_not_found");
}

}  // namespace
}  // namespace flowd::scanner
