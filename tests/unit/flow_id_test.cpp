// SPDX-License-Identifier: Apache-2.0
// FlowID vocabulary: addresses, states, protocols, time format and the flow key hash.
#include "flowd/flow_id.hpp"
#include "flowd/rfc3339.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <ctime>
#include <string>
#include <unordered_set>

namespace flowd {
namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// IpAddress.

TEST(IpAddress, ParsesIpv4) {
  auto a = IpAddress::parse("192.0.2.1");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->family, AF_INET);
  EXPECT_TRUE(a->is_v4());
  EXPECT_FALSE(a->is_v6());
  EXPECT_EQ(a->bytes[0], 192);
  EXPECT_EQ(a->bytes[1], 0);
  EXPECT_EQ(a->bytes[2], 2);
  EXPECT_EQ(a->bytes[3], 1);
  for (std::size_t i = 4; i < 16; ++i) EXPECT_EQ(a->bytes[i], 0) << i;
  EXPECT_EQ(a->to_string(), "192.0.2.1");
}

TEST(IpAddress, ParsesIpv6) {
  auto a = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->family, AF_INET6);
  EXPECT_TRUE(a->is_v6());
  EXPECT_FALSE(a->is_v4());
  EXPECT_EQ(a->bytes[0], 0x20);
  EXPECT_EQ(a->bytes[1], 0x01);
  EXPECT_EQ(a->bytes[2], 0x0d);
  EXPECT_EQ(a->bytes[3], 0xb8);
  EXPECT_EQ(a->bytes[15], 0x01);
  EXPECT_EQ(a->to_string(), "2001:db8::1");
}

TEST(IpAddress, ToStringIsCanonical) {
  EXPECT_EQ(IpAddress::parse("2001:DB8:0:0:0:0:0:1")->to_string(), "2001:db8::1");
  EXPECT_EQ(IpAddress::parse("::")->to_string(), "::");
  EXPECT_EQ(IpAddress::parse("0:0:0:0:0:0:0:1")->to_string(), "::1");
  EXPECT_EQ(IpAddress::parse("::ffff:192.0.2.1")->to_string(), "::ffff:192.0.2.1");
  EXPECT_EQ(IpAddress::parse("::ffff:192.0.2.1")->family, AF_INET6);
  EXPECT_EQ(IpAddress::parse("fe80::1:2:3:4")->to_string(), "fe80::1:2:3:4");
  EXPECT_EQ(IpAddress::parse("0.0.0.0")->to_string(), "0.0.0.0");
  EXPECT_EQ(IpAddress::parse("255.255.255.255")->to_string(), "255.255.255.255");
}

TEST(IpAddress, RejectsInvalid) {
  for (std::string_view s :
       {"", "1.2.3", "1.2.3.4.5", "1.2.3.256", "10.0.0.999", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d",
        "::g", "1:2:3:4:5:6:7:8:9", "2001:db8:::1", "[::1]", "::1%lo", "localhost", "1.2.3.4/24"}) {
    EXPECT_FALSE(IpAddress::parse(s).has_value()) << "'" << s << "'";
  }
  // Longer than any address: refused without overflowing the buffer.
  EXPECT_FALSE(IpAddress::parse(std::string(1000, '1')).has_value());
  // The longest textual IPv6 address still fits.
  auto longest = IpAddress::parse("0000:0000:0000:0000:0000:ffff:255.255.255.255");
  ASSERT_TRUE(longest.has_value());
  EXPECT_EQ(longest->to_string(), "::ffff:255.255.255.255");
  // A string_view into a larger buffer: only the viewed characters count.
  std::string_view prefix = std::string_view("127.0.0.1999").substr(0, 9);
  auto a = IpAddress::parse(prefix);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->to_string(), "127.0.0.1");
}

TEST(IpAddress, V4FromHostOrder) {
  IpAddress a = IpAddress::v4(0x7f000001);
  EXPECT_EQ(a.family, AF_INET);
  EXPECT_EQ(a.to_string(), "127.0.0.1");
  EXPECT_EQ(a, *IpAddress::parse("127.0.0.1"));
  EXPECT_EQ(IpAddress::v4(0xc0000201).to_string(), "192.0.2.1");
}

TEST(IpAddress, UnsetPrintsEmpty) {
  IpAddress a;
  EXPECT_EQ(a.family, 0);
  EXPECT_EQ(a.to_string(), "");
  EXPECT_FALSE(a.is_v4());
  EXPECT_FALSE(a.is_v6());
}

TEST(IpAddress, EqualityIncludesFamily) {
  EXPECT_EQ(*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.1"));
  EXPECT_NE(*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.2"));
  EXPECT_EQ(*IpAddress::parse("::1"), *IpAddress::parse("0::1"));
  // Same bytes, different family.
  IpAddress v4 = *IpAddress::parse("0.0.0.0");
  IpAddress v6 = *IpAddress::parse("::");
  EXPECT_EQ(v4.bytes, v6.bytes);
  EXPECT_NE(v4, v6);
}

// The one test the pipe, the api and the flow journal share (try15i C): 0.0.0.0, ::, and 0.0.0.0
// mapped into IPv6; not their neighbours, nor IPv4-compatible or mapped addresses of hosts.
TEST(IpAddress, UnspecifiedIsAnyAddressInEitherFamilyOrMapped) {
  for (const char* text : {"0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0", "::ffff:0:0"})
    EXPECT_TRUE(IpAddress::parse(text)->is_unspecified()) << text;
  for (const char* text : {"0.0.0.1", "255.255.255.255", "::1", "::ffff:0.0.0.1",
                           "::ffff:198.18.0.1", "::fffe:0:0", "::1:ffff:0:0", "1::", "fd00::"})
    EXPECT_FALSE(IpAddress::parse(text)->is_unspecified()) << text;
  EXPECT_TRUE(IpAddress{}.is_unspecified());  // unset: the marker's key of a UDP flow's source
  // An IPv4 address's bytes past the fourth are not its own.
  IpAddress v4 = *IpAddress::parse("0.0.0.0");
  v4.bytes[10] = v4.bytes[11] = 0xff;
  EXPECT_TRUE(v4.is_unspecified());
}

// ---------------------------------------------------------------------------------------------
// State and protocol.

TEST(FlowState, ParseIsCaseInsensitive) {
  EXPECT_EQ(parse_flow_state("start"), FlowState::kStart);
  EXPECT_EQ(parse_flow_state("START"), FlowState::kStart);
  EXPECT_EQ(parse_flow_state("End"), FlowState::kEnd);
  EXPECT_EQ(parse_flow_state("ongoing"), FlowState::kOngoing);
  EXPECT_EQ(parse_flow_state("OnGoInG"), FlowState::kOngoing);
  for (std::string_view s : {"", "st", "started", "start ", " end", "update", "stop", "ending"})
    EXPECT_EQ(parse_flow_state(s), std::nullopt) << "'" << s << "'";
}

TEST(FlowState, ToStringRoundTrips) {
  for (FlowState s : {FlowState::kStart, FlowState::kEnd, FlowState::kOngoing})
    EXPECT_EQ(parse_flow_state(to_string(s)), s);
  EXPECT_EQ(to_string(FlowState::kStart), "start");
  EXPECT_EQ(to_string(FlowState::kEnd), "end");
  EXPECT_EQ(to_string(FlowState::kOngoing), "ongoing");
}

TEST(Protocol, ParseIsCaseInsensitive) {
  EXPECT_EQ(parse_protocol("tcp"), Protocol::kTcp);
  EXPECT_EQ(parse_protocol("TCP"), Protocol::kTcp);
  EXPECT_EQ(parse_protocol("Udp"), Protocol::kUdp);
  for (std::string_view s : {"", "tc", "tcpp", "6", "17", "sctp", "icmp", "udp "})
    EXPECT_EQ(parse_protocol(s), std::nullopt) << "'" << s << "'";
  EXPECT_EQ(to_string(Protocol::kTcp), "tcp");
  EXPECT_EQ(to_string(Protocol::kUdp), "udp");
}

// ---------------------------------------------------------------------------------------------
// format_time_iso.

TimePoint from_seconds(long long s) {
  return TimePoint{} + std::chrono::seconds(s);
}

TEST(FormatTimeIso, Epoch) {
  EXPECT_EQ(format_time_iso(TimePoint{}), "1970-01-01T00:00:00.000000+00:00");
}

TEST(FormatTimeIso, AlwaysSixDigitsOfMicroseconds) {
  // The Python original dropped ".000000"; we never do.
  EXPECT_EQ(format_time_iso(from_seconds(1'700'000'000)), "2023-11-14T22:13:20.000000+00:00");
  EXPECT_EQ(format_time_iso(from_seconds(1'700'000'000) + 1us), "2023-11-14T22:13:20.000001+00:00");
  EXPECT_EQ(format_time_iso(from_seconds(1'700'000'000) + 123456us),
            "2023-11-14T22:13:20.123456+00:00");
  EXPECT_EQ(format_time_iso(from_seconds(1'700'000'000) + 999999us),
            "2023-11-14T22:13:20.999999+00:00");
}

TEST(FormatTimeIso, SubMicrosecondsAreTruncated) {
  auto t = from_seconds(1'700'000'000) + std::chrono::duration_cast<Clock::duration>(999ns);
  EXPECT_EQ(format_time_iso(t), "2023-11-14T22:13:20.000000+00:00");
  t = from_seconds(1'700'000'000) + std::chrono::duration_cast<Clock::duration>(1999ns);
  EXPECT_EQ(format_time_iso(t), "2023-11-14T22:13:20.000001+00:00");
}

TEST(FormatTimeIso, CalendarEdges) {
  EXPECT_EQ(format_time_iso(from_seconds(1'709'164'800)), "2024-02-29T00:00:00.000000+00:00");
  EXPECT_EQ(format_time_iso(from_seconds(1'704'067'199) + 500000us),
            "2023-12-31T23:59:59.500000+00:00");
  EXPECT_EQ(format_time_iso(from_seconds(1'795'357'308) + 514425us),
            "2026-11-22T14:21:48.514425+00:00");
  EXPECT_EQ(format_time_iso(from_seconds(4'102'444'800)), "2100-01-01T00:00:00.000000+00:00");
}

TEST(FormatTimeIso, ConsecutiveCallsAcrossSeconds) {
  // Each call stands alone, whatever was formatted before on this thread.
  const TimePoint a = from_seconds(1'700'000'000) + 1us;
  const TimePoint b = from_seconds(1'700'000'001) + 2us;
  EXPECT_EQ(format_time_iso(a), "2023-11-14T22:13:20.000001+00:00");
  EXPECT_EQ(format_time_iso(b), "2023-11-14T22:13:21.000002+00:00");
  EXPECT_EQ(format_time_iso(a + 5us), "2023-11-14T22:13:20.000006+00:00");
  EXPECT_EQ(format_time_iso(b), "2023-11-14T22:13:21.000002+00:00");
  EXPECT_EQ(format_time_iso(TimePoint{}), "1970-01-01T00:00:00.000000+00:00");
}

TEST(FormatTimeIso, TheSecondBeforeTheEpoch) {
  // secs == -1: a valid time, not a "nothing cached yet" marker.
  EXPECT_EQ(format_time_iso(TimePoint{} - 1us), "1969-12-31T23:59:59.999999+00:00");
  EXPECT_EQ(format_time_iso(TimePoint{} - 1s), "1969-12-31T23:59:59.000000+00:00");
}

TEST(FormatTimeIso, BeforeTheEpoch) {
  EXPECT_EQ(format_time_iso(TimePoint{} - 1500000us), "1969-12-31T23:59:58.500000+00:00");
  EXPECT_EQ(format_time_iso(TimePoint{} - 86400s), "1969-12-31T00:00:00.000000+00:00");
}

// The date is computed, not asked of gmtime_r: the same as gmtime_r over every year a TimePoint
// holds (nanoseconds: 1677..2262; a step of a prime number of seconds visits every month, day
// and time of day).
TEST(FormatTime, AsGmtimeOverTheWholeRange) {
  constexpr std::int64_t kMin = -9'200'000'000, kMax = 9'200'000'000;
  auto check = [](std::int64_t secs) {
    const auto tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    ASSERT_NE(gmtime_r(&tt, &tm), nullptr);
    char want[40];
    std::strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    ASSERT_EQ(format_time(TimePoint{} + std::chrono::seconds(secs), TimePrecision::kSeconds),
              tm.tm_year + 1900 < 1000
                  ? std::string(4 - std::to_string(tm.tm_year + 1900).size(), '0') + want
                  : std::string(want))
        << secs;
  };
  for (std::int64_t s = kMin; s <= kMax; s += 999'983) check(s);
  for (std::int64_t s : {kMin, kMax, std::int64_t{-1}, std::int64_t{0}, std::int64_t{951782400}})
    check(s);
}

// ---------------------------------------------------------------------------------------------
// FlowKey and its hash.

FlowID make_flow(std::string_view src, std::uint16_t sport, std::string_view dst,
                 std::uint16_t dport, Protocol p = Protocol::kTcp) {
  FlowID f;
  f.protocol = p;
  f.src = *IpAddress::parse(src);
  f.dst = *IpAddress::parse(dst);
  f.src_port = sport;
  f.dst_port = dport;
  return f;
}

TEST(FlowKey, IgnoresStateIdsAndTimes) {
  FlowID start = make_flow("192.0.2.1", 1000, "192.0.2.2", 443);
  start.state = FlowState::kStart;
  start.experiment = 2;
  start.activity = 9;
  start.start_time = from_seconds(1);
  FlowID end = make_flow("192.0.2.1", 1000, "192.0.2.2", 443);
  end.state = FlowState::kEnd;
  end.end_time = from_seconds(2);
  end.plugin = "np_api";
  EXPECT_EQ(FlowKey::of(start), FlowKey::of(end));
  EXPECT_EQ(FlowKeyHash{}(FlowKey::of(start)), FlowKeyHash{}(FlowKey::of(end)));
}

TEST(FlowKey, EveryFieldMatters) {
  const FlowKey base = FlowKey::of(make_flow("192.0.2.1", 1000, "192.0.2.2", 443));
  const FlowKey others[] = {
      FlowKey::of(make_flow("192.0.2.3", 1000, "192.0.2.2", 443)),
      FlowKey::of(make_flow("192.0.2.1", 1001, "192.0.2.2", 443)),
      FlowKey::of(make_flow("192.0.2.1", 1000, "192.0.2.4", 443)),
      FlowKey::of(make_flow("192.0.2.1", 1000, "192.0.2.2", 444)),
      FlowKey::of(make_flow("192.0.2.1", 1000, "192.0.2.2", 443, Protocol::kUdp)),
      FlowKey::of(make_flow("192.0.2.2", 443, "192.0.2.1", 1000)),  // the reverse direction
  };
  FlowKeyHash h;
  for (const auto& k : others) {
    EXPECT_FALSE(k == base);
    EXPECT_NE(h(k), h(base));
  }
}

TEST(FlowKey, WorksAsAnUnorderedSetKey) {
  std::unordered_set<FlowKey, FlowKeyHash> set;
  for (std::uint16_t port = 1; port <= 1000; ++port) {
    set.insert(FlowKey::of(make_flow("2001:db8::1", port, "2001:db8::2", 443)));
    set.insert(FlowKey::of(make_flow("2001:db8::1", port, "2001:db8::2", 443)));  // duplicate
  }
  EXPECT_EQ(set.size(), 1000u);
  EXPECT_TRUE(set.contains(FlowKey::of(make_flow("2001:db8::1", 500, "2001:db8::2", 443))));
  EXPECT_FALSE(set.contains(FlowKey::of(make_flow("2001:db8::1", 1001, "2001:db8::2", 443))));
  // Hashes spread: 1000 keys give (nearly) 1000 distinct values.
  std::unordered_set<std::size_t> hashes;
  for (const auto& k : set) hashes.insert(FlowKeyHash{}(k));
  EXPECT_GE(hashes.size(), 999u);
}

TEST(FlowID, FamilyIsTheDestinationFamily) {
  EXPECT_EQ(make_flow("192.0.2.1", 1, "192.0.2.2", 2).family(), AF_INET);
  EXPECT_EQ(make_flow("::1", 1, "::2", 2).family(), AF_INET6);
  EXPECT_EQ(FlowID{}.family(), 0);
}

}  // namespace
}  // namespace flowd
