// SPDX-License-Identifier: Apache-2.0
// Write -> read: every field firefly_message.hpp writes comes back equal from firefly_parser.hpp,
// for IPv4 and IPv6, start/ongoing/end, with and without the syslog header and the optional parts
// (end-time, address overrides, the netlink section), and again after a relay.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <string>

#include "firefly/firefly_message.hpp"
#include "firefly/firefly_parser.hpp"
#include "flowd/rfc3339.hpp"

namespace flowd::firefly {
namespace {

using namespace std::chrono;

struct Case {
  const char* src;
  const char* dst;
  FlowState state;
  bool header;
  bool optional_parts;
};

std::string describe(const Case& c) {
  return fmt::format("{} -> {} {} header={} optional={}", c.src, c.dst, to_string(c.state),
                     c.header, c.optional_parts);
}

void expect_round_trip(const Case& c) {
  SCOPED_TRACE(describe(c));
  // Whole microseconds: the writer prints microseconds (format_time_iso).
  const TimePoint t0 = TimePoint(microseconds(1764000000123456));
  const TimePoint now = t0 + microseconds(2500001);
  const TimePoint end = now - microseconds(7);
  FlowID f;
  f.state = c.state;
  f.protocol = c.state == FlowState::kOngoing ? Protocol::kUdp : Protocol::kTcp;
  f.src = *IpAddress::parse(c.src);
  f.dst = *IpAddress::parse(c.dst);
  f.src_port = 65535;
  f.dst_port = 1;
  f.experiment = kMaxExperiment;
  f.activity = kMaxActivity;
  f.start_time = t0;
  FireflyFields ff;
  ff.hostname = "host-1.example";
  ff.application = "flowd-cpp \"test\" \\ \x01";
  ff.syslog_header = c.header;
  ff.now = now;
  ff.start_time = t0;
  if (c.optional_parts) {
    if (c.state == FlowState::kEnd) f.end_time = end;
    ff.src_override = f.src.is_v4() ? "203.0.113.1" : "2001:db8:ffff::1";
    ff.dst_override = f.dst.is_v4() ? "203.0.113.2" : "2001:db8:ffff::2";
    ff.netlink =
        R"({"inode": 77, "cong_algo": "bbr", "rtt": 0.125, "meminfo": {"w": 9}, "tcp_info": null})";
    ff.usage = FireflyUsage{12345, 18446744073709551615u};
  }

  const std::string datagram = build_firefly(f, ff);
  SCOPED_TRACE(datagram);
  auto r = parse_firefly(datagram);
  ASSERT_TRUE(r.ok) << r.detail;

  // The syslog header.
  EXPECT_EQ(r.header.present, c.header);
  if (c.header) {
    EXPECT_EQ(r.header.timestamp, now);
    EXPECT_EQ(r.header.hostname, ff.hostname);
    EXPECT_EQ(r.header.app_name, kSyslogAppName);
  }
  // The flow.
  EXPECT_EQ(r.flow.state, f.state);
  EXPECT_EQ(r.flow.protocol, f.protocol);
  EXPECT_EQ(r.flow.src, c.optional_parts ? *IpAddress::parse(ff.src_override) : f.src);
  EXPECT_EQ(r.flow.dst, c.optional_parts ? *IpAddress::parse(ff.dst_override) : f.dst);
  EXPECT_EQ(r.flow.src_port, f.src_port);
  EXPECT_EQ(r.flow.dst_port, f.dst_port);
  EXPECT_EQ(r.flow.experiment, f.experiment);
  EXPECT_EQ(r.flow.activity, f.activity);
  EXPECT_EQ(r.flow.start_time, ff.start_time);
  // An end without its own end-time is stamped with `now`; only end events carry one.
  if (c.state == FlowState::kEnd)
    EXPECT_EQ(r.flow.end_time, f.end_time.value_or(now));
  else
    EXPECT_EQ(r.flow.end_time, std::nullopt);
  // What the listener does not need for a FlowID.
  auto x = read_extras(r.json);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->version, 1);
  EXPECT_EQ(x->current_time, now);
  EXPECT_EQ(x->afi, f.src.is_v6() ? "ipv6" : "ipv4");
  EXPECT_EQ(x->application, ff.application);
  EXPECT_EQ(x->netlink,
            c.optional_parts
                ? R"({"inode":77,"cong_algo":"bbr","rtt":0.125,"meminfo":{"w":9},"tcp_info":null})"
                : "");
  EXPECT_EQ(x->usage, ff.usage);

  // A relay keeps the JSON byte for byte and writes a header of its own.
  FireflyFields relay = ff;
  relay.hostname = "relay.example";
  relay.now = now + seconds(1);
  const std::string relayed = build_relayed_firefly(r.json, relay);
  auto again = parse_firefly(relayed);
  ASSERT_TRUE(again.ok) << again.detail;
  EXPECT_EQ(again.json, r.json);
  EXPECT_EQ(again.header.present, c.header);
  if (c.header) {
    EXPECT_EQ(again.header.hostname, "relay.example");
    EXPECT_EQ(again.header.timestamp, relay.now);
  }
}

TEST(FireflyCodec, EveryWrittenFieldIsReadBackEqual) {
  for (auto [src, dst] :
       {std::pair{"192.0.2.10", "198.51.100.7"}, std::pair{"2001:db8::10", "2001:db8::7"}})
    for (FlowState state : {FlowState::kStart, FlowState::kOngoing, FlowState::kEnd})
      for (bool header : {true, false})
        for (bool optional_parts : {false, true})
          expect_round_trip({src, dst, state, header, optional_parts});
}

// The header is one string in one place: PRI/VERSION, APP-NAME and MSGID as the reader requires.
TEST(FireflyCodec, SyslogHeaderIsTheOneTheReaderExpects) {
  FlowID f;
  f.src = f.dst = *IpAddress::parse("192.0.2.1");
  FireflyFields ff;
  ff.hostname = "h";
  ff.now = TimePoint(seconds(1));
  EXPECT_TRUE(build_firefly(f, ff).starts_with(
      "<134>1 1970-01-01T00:00:01.000000+00:00 h flowd - firefly-json - {"));
  EXPECT_EQ(build_relayed_firefly("{}", ff),
            "<134>1 1970-01-01T00:00:01.000000+00:00 h flowd - firefly-json - {}");
}

TEST(FireflyCodec, ExtrasRefuseWrongTypes) {
  EXPECT_FALSE(read_extras("[]"));
  EXPECT_FALSE(read_extras(R"({"version": "1"})"));
  EXPECT_FALSE(read_extras(R"({"flow-lifecycle": {"current-time": "yesterday"}})"));
  EXPECT_FALSE(read_extras(R"({"context": {"application": 5}})"));
  EXPECT_FALSE(read_extras(R"({"netlink": []})"));
  EXPECT_FALSE(read_extras(R"({"usage": [1, 2]})"));
  EXPECT_FALSE(read_extras(R"({"usage": {"received": 1}})"));
  EXPECT_FALSE(read_extras(R"({"usage": {"received": -1, "sent": 2}})"));
  EXPECT_FALSE(read_extras(R"({"usage": {"received": 1, "sent": 2.5}})"));
  EXPECT_EQ(read_extras(R"({"usage": {"received": 1, "sent": 2}})")->usage, (FireflyUsage{1, 2}));
  auto empty = read_extras("{}");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->version);
  EXPECT_FALSE(empty->current_time);
  EXPECT_EQ(empty->netlink, "");
  EXPECT_FALSE(empty->usage);
}

}  // namespace
}  // namespace flowd::firefly
