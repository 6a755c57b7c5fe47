// SPDX-License-Identifier: Apache-2.0
// The body of POST /v1/flows (plugins/api/flow_request.hpp): shapes, fields, scitag, and the same
// verdict as the pipe for the same flow.
#include "plugins/api/flow_request.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/registry_loader.hpp"
#include "plugins/np_api/pipe_line.hpp"
#include "test_files.hpp"

namespace flowd::api {
namespace {

using namespace std::chrono_literals;

const TimePoint kNow = TimePoint{} + 1'700'000'000s;

const ScitagsRegistry& registry() {
  static const std::shared_ptr<const ScitagsRegistry> reg = [] {
    std::string error;
    auto r =
        ScitagsRegistry::parse(test::read_text_file(FLOWD_FIXTURES "/registry/api.json"), error);
    EXPECT_TRUE(r) << error;
    return r;
  }();
  return *reg;
}

std::string flow(const std::string& tag = R"("experiment": "atlas", "activity": "Debug")",
                 const std::string& port = "443") {
  return R"({"state": "start", "protocol": "tcp", "src_ip": "2001:db8::1", "src_port": 40000,
            "dst_ip": "2001:db8::2", "dst_port": )" +
         port + ", " + tag + "}";
}

TEST(ApiFlowRequest, OneObjectIsOneLocalFlow) {
  auto r = parse_flow_request(flow(), registry(), kNow, 10);
  ASSERT_TRUE(r.body_ok) << r.detail;
  ASSERT_EQ(r.flows.size(), 1u);
  ASSERT_TRUE(r.flows[0].flow) << r.flows[0].detail;
  const FlowID& f = *r.flows[0].flow;
  EXPECT_EQ(f.origin, FlowOrigin::kLocal);
  EXPECT_EQ(f.state, FlowState::kStart);
  EXPECT_EQ(f.src.to_string(), "2001:db8::1");
  EXPECT_EQ(f.dst_port, 443);
  EXPECT_EQ(f.experiment, 2);
  EXPECT_EQ(f.activity, 9);  // atlas "Debug" in the fixture registry
  EXPECT_EQ(f.start_time, kNow);
}

TEST(ApiFlowRequest, ScitagIsExperimentShiftedBySixOrActivity) {
  // 144 = 2 << 6 | 16: atlas / Production Output (spec §5).
  auto r = parse_flow_request(flow(R"("scitag": 144)"), registry(), kNow, 10);
  ASSERT_TRUE(r.flows.at(0).flow) << r.flows[0].detail;
  EXPECT_EQ(r.flows[0].flow->experiment, 2);
  EXPECT_EQ(r.flows[0].flow->activity, 16);
  r = parse_flow_request(flow(R"("scitag": 32767)"), registry(), kNow, 10);
  ASSERT_TRUE(r.flows.at(0).flow) << r.flows[0].detail;
  EXPECT_EQ(r.flows[0].flow->experiment, 511);
  EXPECT_EQ(r.flows[0].flow->activity, 63);
  // An integer, as the tools carry it: a string is refused (issue 14), however numeric.
  for (const char* bad : {R"("scitag": 32768)", R"("scitag": -1)", R"("scitag": "12a")",
                          R"("scitag": "144")", R"("scitag": 99999999999999999999)",
                          R"("scitag": 144, "experiment": 2)", R"("scitag": 1.5)"}) {
    r = parse_flow_request(flow(bad), registry(), kNow, 10);
    ASSERT_EQ(r.flows.size(), 1u) << bad;
    EXPECT_FALSE(r.flows[0].flow) << bad;
    EXPECT_EQ(r.flows[0].reason, Reject::kScitag) << bad << ": " << r.flows[0].detail;
  }
}

TEST(ApiFlowRequest, ListsAndTheFlowsKey) {
  auto r =
      parse_flow_request("[" + flow() + "," + flow(R"("scitag": 66)") + "]", registry(), kNow, 10);
  ASSERT_TRUE(r.body_ok);
  ASSERT_EQ(r.flows.size(), 2u);
  EXPECT_TRUE(r.flows[0].flow && r.flows[1].flow);
  r = parse_flow_request(R"({"flows": [)" + flow() + "]}", registry(), kNow, 10);
  ASSERT_TRUE(r.body_ok);
  EXPECT_EQ(r.flows.size(), 1u);
  r = parse_flow_request("[]", registry(), kNow, 10);
  EXPECT_TRUE(r.body_ok);
  EXPECT_TRUE(r.flows.empty());
}

TEST(ApiFlowRequest, BadBodiesAreRefusedWhole) {
  struct Case {
    std::string body;
    Reject reason;
  } cases[] = {
      {"", Reject::kJson},
      {"start tcp 1.2.3.4 1 5.6.7.8 2 2 9", Reject::kJson},
      {"{\"state\": ", Reject::kJson},
      {"42", Reject::kJson},
      {"[[[[[[[[[[[[1]]]]]]]]]]]]", Reject::kJson},  // deeper than kMaxDepth
      {R"({"flows": 3})", Reject::kJson},
      {"[" + flow() + "," + flow() + "," + flow() + "]", Reject::kTooMany},
  };
  for (const auto& c : cases) {
    auto r = parse_flow_request(c.body, registry(), kNow, 2);
    EXPECT_FALSE(r.body_ok) << c.body;
    EXPECT_EQ(r.reason, c.reason) << c.body << ": " << r.detail;
    EXPECT_TRUE(r.flows.empty());
  }
}

TEST(ApiFlowRequest, BadFlowsGetTheirReason) {
  struct Case {
    std::string body;
    Reject reason;
  } cases[] = {
      {"[1]", Reject::kFields},
      {R"({"state": "start"})", Reject::kFields},
      {flow(R"("experiment": 2, "activity": 9, "colour": "red")"), Reject::kFields},
      {flow(R"("experiment": 2, "experiment": 3, "activity": 9)"), Reject::kFields},
      {flow(R"("experiment": 2)"), Reject::kFields},
      {flow(R"("experiment": "nosuch", "activity": 1)"), Reject::kExperiment},
      {flow(R"("experiment": 512, "activity": 1)"), Reject::kExperiment},
      {flow(R"("experiment": 2, "activity": 64)"), Reject::kActivity},
      {flow(R"("experiment": 2, "activity": true)"), Reject::kActivity},
      {flow(R"("experiment": 2, "activity": 1)", "70000"), Reject::kPort},
      {flow(R"("experiment": 2, "activity": 1)", "-1"), Reject::kPort},
      {flow(R"("experiment": 2, "activity": 1)", "null"), Reject::kPort},
      {R"({"state": "begin", "protocol": "tcp", "src_ip": "::1", "src_port": 1, "dst_ip": "::2",
           "dst_port": 2, "scitag": 66})",
       Reject::kState},
      {R"({"state": "start", "protocol": "sctp", "src_ip": "::1", "src_port": 1, "dst_ip": "::2",
           "dst_port": 2, "scitag": 66})",
       Reject::kProtocol},
      {R"({"state": "start", "protocol": "tcp", "src_ip": "::1", "src_port": 1,
           "dst_ip": "127.0.0.1", "dst_port": 2, "scitag": 66})",
       Reject::kFamily},
      {R"({"state": "start", "protocol": "tcp", "src_ip": 1, "src_port": 1, "dst_ip": "::2",
           "dst_port": 2, "scitag": 66})",
       Reject::kAddress},
  };
  for (const auto& c : cases) {
    auto r = parse_flow_request(c.body, registry(), kNow, 10);
    ASSERT_TRUE(r.body_ok) << c.body << ": " << r.detail;
    ASSERT_EQ(r.flows.size(), 1u);
    EXPECT_FALSE(r.flows[0].flow) << c.body;
    EXPECT_EQ(r.flows[0].reason, c.reason) << c.body << ": " << r.flows[0].detail;
  }
}

// Issue 14 (found by a fresh user): a number too large for 64 bits is the field's fault, not the
// body's; an unknown key beside "flows" is named; JSON that is invalid stays invalid.
TEST(ApiFlowRequest, RefusalsNameTheFieldAtFault) {
  for (const char* port : {"99999999999999999999", "-99999999999999999999", "1e400", "1e3"}) {
    auto r = parse_flow_request(flow(R"("scitag": 144)", port), registry(), kNow, 10);
    ASSERT_TRUE(r.body_ok) << port << ": " << r.detail;
    ASSERT_EQ(r.flows.size(), 1u);
    EXPECT_FALSE(r.flows[0].flow) << port;
    EXPECT_EQ(r.flows[0].reason, Reject::kPort) << port << ": " << r.flows[0].detail;
  }
  // Beside another flow with an overflowing port, a good flow is still accepted.
  auto r = parse_flow_request(
      "[" + flow() + "," + flow(R"("scitag": 144)", "123456789012345678901") + "]", registry(),
      kNow, 10);
  ASSERT_EQ(r.flows.size(), 2u) << r.detail;
  EXPECT_TRUE(r.flows[0].flow) << r.flows[0].detail;
  EXPECT_EQ(r.flows[1].reason, Reject::kPort);
  EXPECT_NE(r.flows[1].detail.find("123456789012345678901 is out of range"), std::string::npos)
      << r.flows[1].detail;
  // Not JSON, rescued or not: a leading zero, a bare minus.
  for (const char* port : {"0443", "-", "99999999999999999999 1"}) {
    r = parse_flow_request(flow(R"("scitag": 144)", port), registry(), kNow, 10);
    EXPECT_FALSE(r.body_ok) << port;
    EXPECT_EQ(r.reason, Reject::kJson) << port;
  }
  // A string that looks like the rescue's mark, in a body that needed none, is just a string.
  r = parse_flow_request(flow(R"("scitag": 144)", R"("\u0000443")"), registry(), kNow, 10);
  ASSERT_EQ(r.flows.size(), 1u);
  EXPECT_EQ(r.flows[0].reason, Reject::kPort);
  r = parse_flow_request(R"({"flows": [], "extra": 1})", registry(), kNow, 10);
  EXPECT_FALSE(r.body_ok);
  EXPECT_NE(r.detail.find("'extra'"), std::string::npos) << r.detail;
  r = parse_flow_request(R"({"extra": 1, "flows": [1]})", registry(), kNow, 10);
  EXPECT_FALSE(r.body_ok);
  EXPECT_NE(r.detail.find("'extra'"), std::string::npos) << r.detail;
}

// try15i C: as on the pipe, a flow with an unspecified address on either side (0.0.0.0, ::,
// ::ffff:0.0.0.0) is refused as `address`: its fireflies would come back to this host, and the
// flow journal would not take it back after a kill -9.
TEST(ApiFlowRequest, AnUnspecifiedAddressOnEitherSideIsRefused) {
  for (auto [src, dst] :
       std::vector<std::pair<std::string, std::string>>{{"0.0.0.0", "198.18.0.2"},
                                                        {"198.18.0.1", "0.0.0.0"},
                                                        {"::", "fd00::2"},
                                                        {"fd00::1", "::"},
                                                        {"fd00::1", "::ffff:0.0.0.0"},
                                                        {"::ffff:0.0.0.0", "fd00::2"}}) {
    const std::string body = R"({"state": "start", "protocol": "tcp", "src_ip": ")" + src +
                             R"(", "src_port": 1, "dst_ip": ")" + dst +
                             R"(", "dst_port": 2, "scitag": 144})";
    auto r = parse_flow_request(body, registry(), kNow, 10);
    ASSERT_TRUE(r.body_ok) << body << ": " << r.detail;
    ASSERT_EQ(r.flows.size(), 1u);
    EXPECT_FALSE(r.flows[0].flow) << body;
    EXPECT_EQ(r.flows[0].reason, Reject::kAddress) << body << ": " << r.flows[0].detail;
    EXPECT_NE(r.flows[0].detail.find("unspecified"), std::string::npos) << r.flows[0].detail;
  }
  // In a list, the others are still accepted (the 422 answer names the refused one).
  auto r = parse_flow_request(
      "[" + flow() +
          R"(, {"state": "start", "protocol": "tcp", "src_ip": "2001:db8::1", "src_port": 1,
           "dst_ip": "::", "dst_port": 2, "scitag": 144}])",
      registry(), kNow, 10);
  ASSERT_EQ(r.flows.size(), 2u) << r.detail;
  EXPECT_TRUE(r.flows[0].flow) << r.flows[0].detail;
  EXPECT_EQ(r.flows[1].reason, Reject::kAddress);
}

// One rule for both: a flow is refused over HTTP for the reason the pipe gives, by the same name.
TEST(ApiFlowRequest, SameVerdictAsThePipe) {
  const std::vector<std::vector<std::string>> lines = {
      {"start", "tcp", "192.0.2.1", "1", "192.0.2.2", "2", "atlas", "Debug"},
      {"end", "udp", "2001:db8::1", "1", "2001:db8::2", "2", "2", "9"},
      {"ongoing", "tcp", "192.0.2.1", "1", "192.0.2.2", "2", "atlas", "Data_Challenge"},
      {"stop", "tcp", "192.0.2.1", "1", "192.0.2.2", "2", "2", "9"},
      {"start", "icmp", "192.0.2.1", "1", "192.0.2.2", "2", "2", "9"},
      {"start", "tcp", "192.0.2.300", "1", "192.0.2.2", "2", "2", "9"},
      {"start", "tcp", "192.0.2.1", "1", "2001:db8::2", "2", "2", "9"},
      {"start", "tcp", "192.0.2.1", "65536", "192.0.2.2", "2", "2", "9"},
      {"start", "tcp", "192.0.2.1", "1", "192.0.2.2", "2", "cern", "9"},
      {"start", "tcp", "192.0.2.1", "1", "192.0.2.2", "2", "atlas", "Nope"},
      {"start", "tcp", "0.0.0.0", "1", "192.0.2.2", "2", "2", "9"},
      {"start", "tcp", "2001:db8::1", "1", "::ffff:0.0.0.0", "2", "2", "9"},
  };
  for (const auto& f : lines) {
    std::string line, json = "{";
    static const char* names[] = {"state",  "protocol", "src_ip",     "src_port",
                                  "dst_ip", "dst_port", "experiment", "activity"};
    for (std::size_t i = 0; i < f.size(); ++i) {
      line += (i ? " " : "") + f[i];
      json += std::string(i ? ", " : "") + "\"" + names[i] + "\": \"" + f[i] + "\"";
    }
    json += "}";
    auto pipe = np_api::parse_pipe_line(line, registry(), kNow);
    auto http = parse_flow_request(json, registry(), kNow, 10);
    ASSERT_EQ(http.flows.size(), 1u) << json << ": " << http.detail;
    ASSERT_EQ(pipe.ok, http.flows[0].flow.has_value()) << line;
    if (pipe.ok) {
      EXPECT_EQ(FlowKey::of(pipe.flow), FlowKey::of(*http.flows[0].flow)) << line;
      EXPECT_EQ(pipe.flow.experiment, http.flows[0].flow->experiment) << line;
      EXPECT_EQ(pipe.flow.activity, http.flows[0].flow->activity) << line;
      EXPECT_EQ(pipe.flow.state, http.flows[0].flow->state) << line;
    } else {
      EXPECT_EQ(np_api::to_string(pipe.reason), to_string(http.flows[0].reason)) << line;
      EXPECT_EQ(pipe.detail, http.flows[0].detail) << line;
    }
  }
}

}  // namespace
}  // namespace flowd::api
