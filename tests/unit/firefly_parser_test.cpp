// SPDX-License-Identifier: Apache-2.0
// The firefly parser against every shared fixture and bad input (what flowd writes itself is read
// back in firefly_codec_test.cpp).
#include "firefly/firefly_parser.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <filesystem>
#include <map>

#include "test_files.hpp"

namespace flowd::firefly {
namespace {

using flowd::test::read_text_file;
using namespace std::chrono;

struct Expected {
  FlowState state;
  Protocol protocol;
  std::string src, dst;
  std::uint16_t src_port, dst_port, experiment, activity;
  std::string start_time, end_time;  // "" = none
};

TimePoint at(const std::string& s) {
  auto t = parse_rfc3339(s);
  EXPECT_TRUE(t) << s;
  return t.value_or(TimePoint{});
}

// Every firefly in ../shared/fixtures/firefly/ and the FlowID it must give.
const std::map<std::string, Expected>& expectations() {
  static const std::map<std::string, Expected> m{
      {"flowd-go-end.firefly",
       {FlowState::kEnd, Protocol::kUdp, "fe80::1", "fe80::2", 1234, 56789, 3333, 12,
        "2021-09-07T22:22:21.999933+00:00", "2021-09-07T22:22:22.000690+00:00"}},
      {"flowd-go-sample.firefly",
       {FlowState::kStart, Protocol::kTcp, "2600:900:6:1101:a288:c2ff:fed2:34de",
        "2620:6a:0:8421:f0:0:189:154", 1234, 5678, 1, 1, "2024-03-28T08:58:44.899660+00:00", ""}},
      {"flowd-go-start.firefly",
       {FlowState::kStart, Protocol::kTcp, "10.99.0.1", "127.0.0.1", 4321, 0, 3333, 12,
        "2021-09-07T22:22:21.998225+00:00", ""}},
      {"flowd-py-end-tcp-ipv4.txt",
       {FlowState::kEnd, Protocol::kTcp, "127.0.0.1", "127.0.0.1", 2345, 5777, 2, 9, "",
        "2026-11-22T14:21:49.249103+00:00"}},
      {"flowd-py-end-tcp-ipv6.txt",
       {FlowState::kEnd, Protocol::kTcp, "::1", "::1", 2345, 5777, 2, 9, "",
        "2026-11-22T14:21:50.749723+00:00"}},
      {"flowd-py-ongoing-tcp-ipv4.txt",
       {FlowState::kOngoing, Protocol::kTcp, "127.0.0.1", "127.0.0.1", 2347, 5779, 2, 9, "", ""}},
      {"flowd-py-start-mixed-v4src-v6dst.txt",
       {FlowState::kStart, Protocol::kTcp, "127.0.0.1", "::1", 2345, 5777, 2, 9,
        "2026-11-22T14:21:52.246518+00:00", ""}},
      {"flowd-py-start-tcp-ipv4.txt",
       {FlowState::kStart, Protocol::kTcp, "127.0.0.1", "127.0.0.1", 2345, 5777, 2, 9,
        "2026-11-22T14:21:48.507094+00:00", ""}},
      {"flowd-py-start-tcp-ipv6.txt",
       {FlowState::kStart, Protocol::kTcp, "::1", "::1", 2345, 5777, 2, 9,
        "2026-11-22T14:21:50.001850+00:00", ""}},
      {"flowd-py-start-udp-ipv4-cms.txt",
       {FlowState::kStart, Protocol::kUdp, "127.0.0.1", "127.0.0.1", 40000, 5001, 3, 4,
        "2026-11-22T14:21:51.495318+00:00", ""}},
      {"flowd-py-start-unregistered-exp999.txt",
       {FlowState::kStart, Protocol::kTcp, "127.0.0.1", "127.0.0.1", 2346, 5778, 999, 999,
        "2026-11-22T14:21:52.994429+00:00", ""}},
  };
  return m;
}

// Fixture files that are not fireflies.
bool not_a_firefly(const std::string& name) {
  return name.ends_with(".json") || name.ends_with(".cfg") || name == "flowd-py-input-lines.txt";
}

// flowd-go's API takes its Go-JSON FlowID ({"State": 2, "Src": {"IP", "Port"}, ...}); sent as a
// firefly it is refused, naming what is missing, rather than misread.
TEST(FireflyParser, FlowdGoApiFlowIdsAreNotFireflies) {
  for (const char* name : {"flowd-go-api-start.json", "flowd-go-api-end.json"}) {
    auto r = parse_firefly(read_text_file(std::string(FLOWD_FIXTURES) + "/firefly/" + name));
    EXPECT_FALSE(r.ok) << name;
    EXPECT_EQ(r.reason, RejectReason::kMissing) << name;
    EXPECT_EQ(r.detail, "no \"flow-lifecycle\" object") << name;
  }
}

void expect_flow(const FlowID& f, const Expected& e, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(f.state, e.state);
  EXPECT_EQ(f.protocol, e.protocol);
  EXPECT_EQ(f.src.to_string(), e.src);
  EXPECT_EQ(f.dst.to_string(), e.dst);
  EXPECT_EQ(f.src_port, e.src_port);
  EXPECT_EQ(f.dst_port, e.dst_port);
  EXPECT_EQ(f.experiment, e.experiment);
  EXPECT_EQ(f.activity, e.activity);
  if (e.start_time.empty())
    EXPECT_FALSE(f.start_time);
  else
    EXPECT_EQ(f.start_time, at(e.start_time));
  if (e.end_time.empty())
    EXPECT_FALSE(f.end_time);
  else
    EXPECT_EQ(f.end_time, at(e.end_time));
}

TEST(FireflyParser, EveryFixtureParsesToItsFlow) {
  std::size_t seen = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(FLOWD_FIXTURES) + "/firefly")) {
    std::string name = entry.path().filename().string();
    if (not_a_firefly(name)) continue;
    auto it = expectations().find(name);
    ASSERT_NE(it, expectations().end())
        << "fixture " << name << " has no expected flow in this test";
    std::string text = read_text_file(entry.path().string());
    auto r = parse_firefly(text);
    ASSERT_TRUE(r.ok) << name << ": " << to_string(r.reason) << ": " << r.detail;
    expect_flow(r.flow, it->second, name);
    // The JSON kept for relaying is the object itself, header and blanks stripped.
    EXPECT_EQ(r.json.front(), '{') << name;
    EXPECT_EQ(r.json.back(), '}') << name;
    ++seen;
  }
  EXPECT_EQ(seen, expectations().size());
}

TEST(FireflyParser, XrootdStyleWithUsageAndNetlink) {
  // XRootD: compact JSON, "-" as syslog timestamp, usage and netlink sections.
  std::string d =
      R"(<134>1 - xrd.example.org xrootd - firefly-json - {"version":1,"flow-lifecycle":{"state":"end",)"
      R"("current-time":"2024-05-02T10:00:05.000000+00:00","start-time":"2024-05-02T10:00:00.000000+00:00",)"
      R"("end-time":"2024-05-02T10:00:05Z"},"usage":{"received":123,"sent":456789},"netlink":{"rtt":0.5},)"
      R"("flow-id":{"afi":"ipv6","src-ip":"2001:db8::1","dst-ip":"2001:db8::2","protocol":"tcp","src-port":1094,)"
      R"("dst-port":40000},"context":{"experiment-id":2,"activity-id":3,"application":"xrootd"}})";
  auto r = parse_firefly(d);
  ASSERT_TRUE(r.ok) << r.detail;
  expect_flow(r.flow,
              {FlowState::kEnd, Protocol::kTcp, "2001:db8::1", "2001:db8::2", 1094, 40000, 2, 3,
               "2024-05-02T10:00:00.000000+00:00", "2024-05-02T10:00:05+00:00"},
              "xrootd");
}

TEST(FireflyParser, FlowdGoOngoingWithEmptyTimestampAndEnrichment) {
  // flowd-go: empty syslog TIMESTAMP (two spaces), local-zone nanosecond times, lean enrichment.
  std::string d =
      R"(<134>1  host.example flowd-go - firefly-json - {"version":1,"flow-lifecycle":{"state":"ongoing",)"
      R"("current-time":"2025-02-06T13:21:31.893064962+01:00","start-time":"2025-02-06T13:21:30.893064962+01:00"},)"
      R"("flow-id":{"afi":"ipv4","src-ip":"192.0.2.1","dst-ip":"192.0.2.2","protocol":"tcp","src-port":2345,)"
      R"("dst-port":5777},"context":{"experiment-id":2,"activity-id":9,"application":"flowd-go-v2.4.2"},)"
      R"("netlink":{"tcpInfo":{"rtt":120,"sndCwnd":10},"cong":{"algorithm":"cubic"}},"usage":{"received":1,"sent":2}})";
  auto r = parse_firefly(d);
  ASSERT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.flow.state, FlowState::kOngoing);
  EXPECT_EQ(r.flow.start_time, at("2025-02-06T12:21:30.893064962Z"));
  EXPECT_FALSE(r.flow.end_time);
}

TEST(FireflyParser, Rfc3339) {
  auto base = TimePoint(seconds(1631053342));  // 2021-09-07T22:22:22Z
  EXPECT_EQ(parse_rfc3339("2021-09-07T22:22:22Z"), base);
  EXPECT_EQ(parse_rfc3339("2021-09-07t22:22:22z"), base);
  EXPECT_EQ(parse_rfc3339("2021-09-07T22:22:22.5+00:00"), base + milliseconds(500));
  EXPECT_EQ(parse_rfc3339("2021-09-08T00:22:22.000000001+02:00"), base + nanoseconds(1));
  EXPECT_EQ(parse_rfc3339("2021-09-07T20:52:22-01:30"), base);
  EXPECT_EQ(parse_rfc3339("2024-02-29T00:00:00Z"), TimePoint(seconds(1709164800)));
  for (const char* bad :
       {"", "2021-09-07", "2021-09-07T22:22:22", "2021-13-07T22:22:22Z", "2021-02-29T00:00:00Z",
        "2021-09-07T24:00:00Z", "2021-09-07T22:22:22.Z", "2021-09-07T22:22:22.1234567890Z",
        "2021-09-07T22:22:22+0000", "2021-09-07T22:22:22+00:00x", "２021-09-07T22:22:22Z"})
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  bool oor = false;
  EXPECT_FALSE(parse_rfc3339("9999-01-01T00:00:00Z", &oor));
  EXPECT_TRUE(oor);
}

TEST(FireflyParser, Utf8) {
  EXPECT_TRUE(is_utf8("plain"));
  EXPECT_TRUE(is_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  for (std::string bad :
       {"\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", "a\x80"})
    EXPECT_FALSE(is_utf8(bad)) << testing::PrintToString(bad);
}

const char* kGood =
    R"({"version": 1, "flow-lifecycle": {"state": "start", "start-time": "2021-09-07T22:22:21.998225+00:00"}, )"
    R"("flow-id": {"afi": "ipv4", "src-ip": "10.0.0.1", "dst-ip": "10.0.0.2", "protocol": "tcp", "src-port": 1, )"
    R"("dst-port": 2}, "context": {"experiment-id": 2, "activity-id": 9}})";

std::string with(std::string from, const std::string& what) {
  auto p = from.find(what.substr(0, what.find(':') + 1));
  EXPECT_NE(p, std::string::npos) << what;
  auto end = from.find_first_of(",}", p);
  return from.replace(p, end - p, what);
}

TEST(FireflyParser, RejectsWithReason) {
  ASSERT_TRUE(parse_firefly(kGood).ok);
  struct Case {
    std::string input;
    RejectReason reason;
  };
  std::string good = kGood;
  std::vector<Case> cases{
      {std::string(70000, ' '), RejectReason::kOversized},
      {good.substr(0, good.size() - 10), RejectReason::kTruncated},
      {"<134>1 - h flowd - firefly-json - ", RejectReason::kTruncated},
      {good.substr(0, 30) + "\xff" + good.substr(30), RejectReason::kNotUtf8},
      {"", RejectReason::kHeader},
      {"hello " + good, RejectReason::kHeader},
      {"<134>1 - h flowd - other - " + good, RejectReason::kHeader},
      {"<999>1 - h flowd - firefly-json - " + good, RejectReason::kHeader},
      {"<134>1 yesterday h flowd - firefly-json - " + good, RejectReason::kHeader},
      {"<134>1 - h flowd firefly-json - " + good, RejectReason::kHeader},
      {"{\"version\": 1,, }", RejectReason::kJson},
      {good + " trailing", RejectReason::kJson},
      {"[1, 2]", RejectReason::kHeader},
      {R"({"flow-id": {}, "context": {}})", RejectReason::kMissing},
      {with(good, R"("src-port": "1")"), RejectReason::kType},
      {with(good, R"("src-port": 1.5)"), RejectReason::kType},
      {R"({"flow-lifecycle": 7})", RejectReason::kType},
      {with(good, R"("state": true)"), RejectReason::kType},
      {with(good, R"("start-time": 5)"), RejectReason::kType},
      {with(good, R"("src-port": 65536)"), RejectReason::kRange},
      {with(good, R"("dst-port": -1)"), RejectReason::kRange},
      {with(good, R"("experiment-id": 70000)"), RejectReason::kRange},
      {with(good, R"("start-time": "1969-12-31T23:59:59Z")"), RejectReason::kRange},
      {with(good, R"("state": "begin")"), RejectReason::kValue},
      {with(good, R"("protocol": "sctp")"), RejectReason::kValue},
      {with(good, R"("src-ip": "10.0.0.999")"), RejectReason::kValue},
      {with(good, R"("start-time": "yesterday")"), RejectReason::kValue},
  };
  for (const auto& c : cases) {
    auto r = parse_firefly(c.input);
    EXPECT_FALSE(r.ok) << c.input;
    EXPECT_EQ(to_string(r.reason), to_string(c.reason)) << c.input << "\n" << r.detail;
    EXPECT_FALSE(r.detail.empty());
  }
}

TEST(FireflyParser, NullAndEmptyTimesMeanUnknown) {
  for (const char* t : {"null", "\"\"", "\"0001-01-01T00:00:00Z\""}) {
    auto r = parse_firefly(with(kGood, std::string(R"("start-time": )") + t));
    ASSERT_TRUE(r.ok) << t << ": " << r.detail;
    EXPECT_FALSE(r.flow.start_time) << t;
  }
}

}  // namespace
}  // namespace flowd::firefly

namespace flowd::firefly {
namespace {

TEST(FireflyParser, EscapesInKeysAndValues) {
  std::string d =
      R"({"flow-lifecycle": {"st\u0061te": "\u0073tart"}, "flow-id": {"src-ip": "10.0.0.1", "dst-ip": "10.0.0.2",)"
      R"( "protocol": "t\u0063p", "src-port": 1, "dst-port": 2, "x": "\ud83d\ude00\n\"\\\/"}, "context": )"
      R"({"experiment-id": 2, "activity-id": 9, "application": "caf\u00e9"}})";
  auto r = parse_firefly(d);
  ASSERT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.flow.state, FlowState::kStart);
  EXPECT_EQ(r.flow.protocol, Protocol::kTcp);
}

TEST(FireflyParser, StrictJson) {
  for (const char* bad : {R"({"a": 01})", R"({"a": 1.})", R"({"a": .5})", R"({"a": -})",
                          R"({"a": +1})", R"({"a": "\x"})", R"({"a": "\ud800"})",
                          R"({"a": "\udc00x"})", R"({"a": tru})", R"({"a": 1,})", R"({,})",
                          R"({"a" 1})", "{\"a\": \"\t\"}", R"({"a": [1,]})", R"({"a": NaN})"}) {
    auto r = parse_firefly(bad);
    EXPECT_FALSE(r.ok) << bad;
    EXPECT_TRUE(r.reason == RejectReason::kJson || r.reason == RejectReason::kTruncated)
        << bad << " " << r.detail;
  }
  std::string deep = "{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(parse_firefly(deep).reason, RejectReason::kJson);
  auto big =
      parse_firefly(std::string(kGood).replace(std::string(kGood).find("\"src-port\": 1"), 13,
                                               "\"src-port\": 123456789012345678901234567890"));
  EXPECT_EQ(big.reason, RejectReason::kRange) << big.detail;
}

}  // namespace
}  // namespace flowd::firefly
