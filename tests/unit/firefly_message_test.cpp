// SPDX-License-Identifier: Apache-2.0
// The firefly datagram, compared byte for byte with what the Python original sent.
#include "firefly/firefly_message.hpp"
#include "backends/udp_firefly/tcp_enrichment.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include "test_files.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace flowd::firefly {
namespace {

using json = nlohmann::json;

using flowd::test::read_text_file;

// "2026-11-22T14:21:48.514425+00:00" -> a time point (UTC, microseconds).
TimePoint parse_iso_time(const std::string& s) {
  std::tm tm{};
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  long micros = 0;
  int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6ld+00:00", &year, &mon, &day, &hour,
                      &min, &sec, &micros);
  EXPECT_EQ(n, 7) << s;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return Clock::from_time_t(::timegm(&tm)) + std::chrono::microseconds(micros);
}

// A datagram of the Python original: the 7 header tokens and the JSON.
struct PyFirefly {
  std::string text;       // the whole datagram
  std::string header_ts;  // the syslog TIMESTAMP
  json doc;
};

PyFirefly read_py_firefly(const std::string& name) {
  PyFirefly f;
  f.text = read_text_file(std::string(FLOWD_FIXTURES "/firefly/") + name);
  while (!f.text.empty() && (f.text.back() == '\n' || f.text.back() == '\r')) f.text.pop_back();
  auto sp1 = f.text.find(' ');
  auto sp2 = f.text.find(' ', sp1 + 1);
  f.header_ts = f.text.substr(sp1 + 1, sp2 - sp1 - 1);
  auto brace = f.text.find('{');
  EXPECT_NE(brace, std::string::npos) << name;
  f.doc = json::parse(f.text.substr(brace));
  return f;
}

// Our header carries the same instant as current-time (the original took two clock readings).
std::string with_header_ts(std::string text, const std::string& from, const std::string& to) {
  EXPECT_EQ(text.find(from), 7u);
  text.replace(7, from.size(), to);
  return text;
}

FlowID make_flow(FlowState state, Protocol prot, std::string_view src, std::uint16_t sport,
                 std::string_view dst, std::uint16_t dport, std::uint16_t exp, std::uint16_t act) {
  FlowID f;
  f.state = state;
  f.protocol = prot;
  f.src = *IpAddress::parse(src);
  f.dst = *IpAddress::parse(dst);
  f.src_port = sport;
  f.dst_port = dport;
  f.experiment = exp;
  f.activity = act;
  return f;
}

FireflyFields python_fields(const PyFirefly& py) {
  FireflyFields f;
  f.hostname = "vm";
  f.application = "flowd v1.1.7";
  f.now = parse_iso_time(py.doc["flow-lifecycle"]["current-time"].get<std::string>());
  if (py.doc["flow-lifecycle"]["start-time"].is_string())
    f.start_time = parse_iso_time(py.doc["flow-lifecycle"]["start-time"].get<std::string>());
  return f;
}

void expect_matches_python(const std::string& fixture, const FlowID& flow) {
  PyFirefly py = read_py_firefly(fixture);
  FireflyFields f = python_fields(py);
  std::string current = py.doc["flow-lifecycle"]["current-time"].get<std::string>();
  std::string expected = with_header_ts(py.text, py.header_ts, current);
  EXPECT_EQ(build_firefly(flow, f), expected);
}

// ---------------------------------------------------------------------------------------------
// Byte for byte against the original.

TEST(FireflyMessage, StartTcpIpv4MatchesPython) {
  expect_matches_python(
      "flowd-py-start-tcp-ipv4.txt",
      make_flow(FlowState::kStart, Protocol::kTcp, "127.0.0.1", 2345, "127.0.0.1", 5777, 2, 9));
}

TEST(FireflyMessage, StartTcpIpv6MatchesPython) {
  expect_matches_python("flowd-py-start-tcp-ipv6.txt", make_flow(FlowState::kStart, Protocol::kTcp,
                                                                 "::1", 2345, "::1", 5777, 2, 9));
}

TEST(FireflyMessage, StartUdpCmsMatchesPython) {
  expect_matches_python(
      "flowd-py-start-udp-ipv4-cms.txt",
      make_flow(FlowState::kStart, Protocol::kUdp, "127.0.0.1", 40000, "127.0.0.1", 5001, 3, 4));
}

TEST(FireflyMessage, EndMatchesPythonExceptTheStartTime) {
  // The original wrote "start-time": null for np_api end events; we always write a time.
  for (const char* fixture : {"flowd-py-end-tcp-ipv4.txt", "flowd-py-end-tcp-ipv6.txt"}) {
    SCOPED_TRACE(fixture);
    PyFirefly py = read_py_firefly(fixture);
    ASSERT_TRUE(py.doc["flow-lifecycle"]["start-time"].is_null());
    bool v6 = py.doc["flow-id"]["afi"] == "ipv6";
    FlowID flow = make_flow(FlowState::kEnd, Protocol::kTcp, v6 ? "::1" : "127.0.0.1", 2345,
                            v6 ? "::1" : "127.0.0.1", 5777, 2, 9);
    flow.end_time = parse_iso_time(py.doc["flow-lifecycle"]["end-time"].get<std::string>());
    FireflyFields f = python_fields(py);
    f.start_time = parse_iso_time("2026-11-22T14:21:40.000001+00:00");
    std::string current = py.doc["flow-lifecycle"]["current-time"].get<std::string>();
    std::string expected = with_header_ts(py.text, py.header_ts, current);
    auto null_at = expected.find("\"start-time\": null");
    ASSERT_NE(null_at, std::string::npos);
    expected.replace(null_at, std::string_view("\"start-time\": null").size(),
                     "\"start-time\": \"2026-11-22T14:21:40.000001+00:00\"");
    EXPECT_EQ(build_firefly(flow, f), expected);
  }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle fields.

TimePoint t0() {
  return parse_iso_time("2026-01-02T03:04:05.000000+00:00");
}
TimePoint t1() {
  return parse_iso_time("2026-01-02T03:04:06.250000+00:00");
}
TimePoint now() {
  return parse_iso_time("2026-01-02T03:04:07.999999+00:00");
}

FireflyFields fields() {
  FireflyFields f;
  f.hostname = "host.example";
  f.application = "flowd-cpp test";
  f.now = now();
  f.start_time = t0();
  return f;
}

json body_of(const std::string& msg) {
  auto brace = msg.find('{');
  EXPECT_NE(brace, std::string::npos);
  return json::parse(msg.substr(brace));
}

TEST(FireflyMessage, EndCarriesStartAndEndTime) {
  FlowID flow = make_flow(FlowState::kEnd, Protocol::kTcp, "192.0.2.1", 1, "192.0.2.2", 2, 2, 9);
  flow.end_time = t1();
  std::string msg = build_firefly(flow, fields());
  EXPECT_NE(
      msg.find(
          R"("flow-lifecycle": {"state": "end", "current-time": "2026-01-02T03:04:07.999999+00:00", )"
          R"("start-time": "2026-01-02T03:04:05.000000+00:00", )"
          R"("end-time": "2026-01-02T03:04:06.250000+00:00"}, )"),
      std::string::npos)
      << msg;
  json lc = body_of(msg)["flow-lifecycle"];
  EXPECT_TRUE(lc["start-time"].is_string());
  EXPECT_EQ(lc["end-time"], "2026-01-02T03:04:06.250000+00:00");
}

TEST(FireflyMessage, EndWithoutEndTimeUsesNow) {
  FlowID flow = make_flow(FlowState::kEnd, Protocol::kUdp, "::1", 1, "::2", 2, 3, 4);
  json lc = body_of(build_firefly(flow, fields()))["flow-lifecycle"];
  EXPECT_EQ(lc["end-time"], "2026-01-02T03:04:07.999999+00:00");
  EXPECT_EQ(lc["start-time"], "2026-01-02T03:04:05.000000+00:00");
}

TEST(FireflyMessage, StartAndOngoingHaveNoEndTime) {
  for (FlowState s : {FlowState::kStart, FlowState::kOngoing}) {
    FlowID flow = make_flow(s, Protocol::kTcp, "192.0.2.1", 1, "192.0.2.2", 2, 2, 9);
    flow.end_time = t1();  // ignored unless the state is end
    json lc = body_of(build_firefly(flow, fields()))["flow-lifecycle"];
    EXPECT_EQ(lc["state"], std::string(to_string(s)));
    EXPECT_FALSE(lc.contains("end-time")) << lc.dump();
    EXPECT_EQ(lc["start-time"], "2026-01-02T03:04:05.000000+00:00");
    EXPECT_EQ(lc["current-time"], "2026-01-02T03:04:07.999999+00:00");
  }
}

// ---------------------------------------------------------------------------------------------
// Structure: what the firefly schema (v1.0.0) requires.

void expect_valid_firefly(const json& d) {
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["version"], 1);
  const json& lc = d["flow-lifecycle"];
  ASSERT_TRUE(lc.is_object());
  ASSERT_TRUE(lc.contains("state"));
  EXPECT_TRUE(lc["state"] == "start" || lc["state"] == "end" || lc["state"] == "ongoing");
  ASSERT_TRUE(lc.contains("start-time"));
  EXPECT_TRUE(lc["start-time"].is_string());
  if (lc["state"] == "end") {
    EXPECT_TRUE(lc.contains("end-time") && lc["end-time"].is_string());
  }
  for (const auto& item : lc.items()) {
    const std::string& k = item.key();
    EXPECT_TRUE(k == "state" || k == "start-time" || k == "end-time" || k == "current-time") << k;
  }
  const json& id = d["flow-id"];
  ASSERT_TRUE(id.is_object());
  for (const char* k : {"afi", "src-ip", "dst-ip", "protocol", "src-port", "dst-port"})
    EXPECT_TRUE(id.contains(k)) << k;
  EXPECT_TRUE(id["afi"] == "ipv4" || id["afi"] == "ipv6");
  EXPECT_TRUE(id["protocol"] == "tcp" || id["protocol"] == "udp");
  EXPECT_TRUE(id["src-port"].is_number_integer());
  EXPECT_TRUE(id["dst-port"].is_number_integer());
  auto family = id["afi"] == "ipv4" ? AF_INET : AF_INET6;
  auto src = IpAddress::parse(id["src-ip"].get<std::string>());
  auto dst = IpAddress::parse(id["dst-ip"].get<std::string>());
  ASSERT_TRUE(src && dst);
  EXPECT_EQ(src->family, family);
  EXPECT_EQ(dst->family, family);
  const json& ctx = d["context"];
  ASSERT_TRUE(ctx.is_object());
  for (const char* k : {"experiment-id", "activity-id", "application"})
    EXPECT_TRUE(ctx.contains(k)) << k;
  EXPECT_TRUE(ctx["experiment-id"].is_number_integer());
  EXPECT_TRUE(ctx["activity-id"].is_number_integer());
}

TEST(FireflyMessage, ParsesAsJsonAndHasTheRequiredKeys) {
  for (FlowState s : {FlowState::kStart, FlowState::kEnd, FlowState::kOngoing}) {
    for (bool v6 : {false, true}) {
      FlowID flow =
          make_flow(s, v6 ? Protocol::kUdp : Protocol::kTcp, v6 ? "2001:db8::1" : "192.0.2.1",
                    65535, v6 ? "2001:db8::2" : "192.0.2.2", 1, 511, 63);
      std::string msg = build_firefly(flow, fields());
      SCOPED_TRACE(msg);
      json d = body_of(msg);
      expect_valid_firefly(d);
      EXPECT_EQ(d["flow-id"]["afi"], v6 ? "ipv6" : "ipv4");
      EXPECT_EQ(d["flow-id"]["src-port"], 65535);
      EXPECT_EQ(d["flow-id"]["dst-port"], 1);
      EXPECT_EQ(d["context"]["experiment-id"], 511);
      EXPECT_EQ(d["context"]["activity-id"], 63);
      EXPECT_EQ(d["context"]["application"], "flowd-cpp test");
    }
  }
}

TEST(FireflyMessage, SyslogHeader) {
  FlowID flow = make_flow(FlowState::kStart, Protocol::kTcp, "192.0.2.1", 1, "192.0.2.2", 2, 2, 9);
  std::string msg = build_firefly(flow, fields());
  const std::string header =
      "<134>1 2026-01-02T03:04:07.999999+00:00 host.example flowd - firefly-json - ";
  ASSERT_EQ(msg.rfind(header, 0), 0u) << msg;
  EXPECT_EQ(msg[header.size()], '{');
  // Exactly 7 space-separated header tokens before the JSON.
  std::istringstream tokens(msg.substr(0, header.size()));
  int n = 0;
  for (std::string t; tokens >> t;) ++n;
  EXPECT_EQ(n, 7);
}

TEST(FireflyMessage, NoSyslogHeaderGivesBareJson) {
  FlowID flow = make_flow(FlowState::kStart, Protocol::kTcp, "192.0.2.1", 1, "192.0.2.2", 2, 2, 9);
  FireflyFields with = fields();
  FireflyFields without = fields();
  without.syslog_header = false;
  std::string framed = build_firefly(flow, with);
  std::string bare = build_firefly(flow, without);
  ASSERT_FALSE(bare.empty());
  EXPECT_EQ(bare.front(), '{');
  EXPECT_EQ(bare.back(), '}');
  EXPECT_EQ(bare.find("<134>"), std::string::npos);
  EXPECT_EQ(framed.substr(framed.find('{')), bare);
  expect_valid_firefly(json::parse(bare));
}

TEST(FireflyMessage, SrcOverrideReplacesSrcIp) {
  FlowID flow = make_flow(FlowState::kStart, Protocol::kTcp, "10.0.0.5", 1, "192.0.2.2", 2, 2, 9);
  FireflyFields f = fields();
  f.src_override = "198.51.100.7";
  json d = body_of(build_firefly(flow, f));
  EXPECT_EQ(d["flow-id"]["src-ip"], "198.51.100.7");
  EXPECT_EQ(d["flow-id"]["dst-ip"], "192.0.2.2");
  f.src_override.clear();
  EXPECT_EQ(body_of(build_firefly(flow, f))["flow-id"]["src-ip"], "10.0.0.5");
}

TEST(FireflyMessage, ApplicationIsEscaped) {
  FlowID flow = make_flow(FlowState::kStart, Protocol::kTcp, "192.0.2.1", 1, "192.0.2.2", 2, 2, 9);
  FireflyFields f = fields();
  f.application = "a \"quoted\" \\ name\n";
  json d = body_of(build_firefly(flow, f));
  EXPECT_EQ(d["context"]["application"], "a \"quoted\" \\ name\n");
}

}  // namespace
}  // namespace flowd::firefly

namespace flowd::udp_firefly {
namespace {

using firefly::build_firefly;
using firefly::FireflyFields;
using json = nlohmann::json;

// The netlink section (tcp_enrichment.hpp): valid JSON, the original's field names and units.
TEST(FireflyNetlink, SectionIsValidJsonWithTheOriginalsUnits) {
  netlink::SockEntry e;
  e.local = *IpAddress::parse("fd00::1");
  e.remote = *IpAddress::parse("fd00::2");
  e.local_port = 40000;
  e.remote_port = 5000;
  e.inode = 77;
  netlink::TcpDetails d;
  d.info_len = sizeof(tcp_info);
  d.info.tcpi_state = netlink::kTcpEstablished;
  d.info.tcpi_rto = 3000000;  // the initial RTO: null, as the original
  d.info.tcpi_ato = 40000;
  d.info.tcpi_rttvar = 1500;
  d.info.tcpi_rtt = 250;
  d.info.tcpi_snd_ssthresh = 0x7fffffff;
  d.info.tcpi_snd_mss = 1428;
  d.info.tcpi_options = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK;
  d.info.tcpi_bytes_acked = 12345;
  std::strcpy(d.congestion, "bbr");
  d.has_meminfo = true;
  d.meminfo[1] = 9;
  auto j = json::parse(netlink_json(e, d));
  EXPECT_EQ(j["src"], "fd00::1");
  EXPECT_EQ(j["dst_port"], 5000);
  EXPECT_EQ(j["inode"], 77);
  EXPECT_EQ(j["cong_algo"], "bbr");
  EXPECT_EQ(j["meminfo"]["w"], 9);
  auto t = j["tcp_info"];
  EXPECT_EQ(t["state"], "established");
  EXPECT_TRUE(t["rto"].is_null());
  EXPECT_TRUE(t["snd_ssthresh"].is_null());
  EXPECT_DOUBLE_EQ(t["ato"].get<double>(), 40.0);
  EXPECT_DOUBLE_EQ(t["rttvar"].get<double>(), 1.5);
  EXPECT_EQ(t["rtt"], 250);
  EXPECT_EQ(t["snd_mss"], 1428);
  EXPECT_EQ(t["bytes_acked"], 12345);
  EXPECT_EQ(t["opts"], json::array({"ts", "sack"}));
  // Without tcp_info (a TIME-WAIT socket) the section has the socket only.
  netlink::TcpDetails none;
  EXPECT_FALSE(json::parse(netlink_json(e, none)).contains("tcp_info"));
}

// netlink.rtt in milliseconds, as XRootD sends it and the Scitags collector reads it; tcp_info.rtt
// stays in microseconds (the original's detail).
TEST(FireflyNetlink, TopLevelRttIsInMilliseconds) {
  netlink::SockEntry e;
  netlink::TcpDetails d;
  d.info_len = sizeof(tcp_info);
  d.info.tcpi_rtt = 12345;  // µs
  auto j = json::parse(netlink_json(e, d));
  ASSERT_TRUE(j.contains("rtt")) << j.dump();
  EXPECT_TRUE(j["rtt"].is_number_float());
  EXPECT_DOUBLE_EQ(j["rtt"].get<double>(), 12.345);
  EXPECT_EQ(j["tcp_info"]["rtt"], 12345);
  d.info.tcpi_rtt = 7;
  EXPECT_DOUBLE_EQ(json::parse(netlink_json(e, d))["rtt"].get<double>(), 0.007);
  netlink::TcpDetails none;  // no tcp_info, no rtt
  EXPECT_FALSE(json::parse(netlink_json(e, none)).contains("rtt"));
}

// usage: received from tcpi_bytes_received, sent from tcpi_bytes_acked (not bytes_sent, which
// counts retransmissions).
TEST(FireflyUsage, FromTcpInfoBytesReceivedAndAcked) {
  netlink::TcpDetails d;
  EXPECT_FALSE(usage_of(d));  // no tcp_info
  d.info_len = sizeof(tcp_info);
  d.info.tcpi_bytes_received = 1000;
  d.info.tcpi_bytes_acked = 5'000'000'001;
  d.info.tcpi_bytes_sent = 6'000'000'000;
  auto u = usage_of(d);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->received, 1000u);
  EXPECT_EQ(u->sent, 5'000'000'001u);
}

TEST(FireflyUsage, WrittenAtTopLevelBeforeNetlink) {
  FlowID flow;
  flow.src = *IpAddress::parse("192.0.2.1");
  flow.dst = *IpAddress::parse("192.0.2.2");
  flow.state = FlowState::kEnd;
  FireflyFields f;
  f.hostname = "h";
  f.application = "a";
  f.usage = firefly::FireflyUsage{17, 18446744073709551615u};
  f.netlink = R"({"rtt": 0.25})";
  std::string msg = build_firefly(flow, f);
  EXPECT_NE(
      msg.find(
          R"("application": "a"}, "usage": {"received": 17, "sent": 18446744073709551615}, "netlink": {"rtt": 0.25}})"),
      std::string::npos)
      << msg;
  auto j = json::parse(msg.substr(msg.find('{')));
  EXPECT_EQ(j["usage"]["received"], 17);
  EXPECT_DOUBLE_EQ(j["netlink"]["rtt"].get<double>(), 0.25);
  f.usage.reset();
  EXPECT_FALSE(json::parse(build_firefly(flow, f).substr(msg.find('{'))).contains("usage"));
}

TEST(FireflyNetlink, SectionIsTheLastKeyOfTheFirefly) {
  FlowID flow;
  flow.src = *IpAddress::parse("192.0.2.1");
  flow.dst = *IpAddress::parse("192.0.2.2");
  FireflyFields f;
  f.hostname = "h";
  f.application = "a";
  f.netlink = R"({"src": "192.0.2.1"})";
  std::string msg = build_firefly(flow, f);
  EXPECT_NE(msg.find(R"("application": "a"}, "netlink": {"src": "192.0.2.1"}})"), std::string::npos)
      << msg;
  EXPECT_EQ(json::parse(msg.substr(msg.find('{')))["netlink"]["src"], "192.0.2.1");
  f.netlink.clear();
  EXPECT_FALSE(json::parse(build_firefly(flow, f).substr(msg.find('{'))).contains("netlink"));
}

}  // namespace
}  // namespace flowd::udp_firefly
