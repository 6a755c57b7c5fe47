// SPDX-License-Identifier: Apache-2.0
// The firefly parser's JSON layer (simdjson): truncated vs malformed, numbers simdjson cannot hold,
// depth and duplicate keys.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "firefly/firefly_json.hpp"
#include "firefly/firefly_parser.hpp"

namespace flowd::firefly {
namespace {

const std::string kFirefly =
    R"({"version": 1, "flow-lifecycle": {"state": "start", "start-time": "2021-09-07T22:22:21.998225+00:00"}, )"
    R"("flow-id": {"afi": "ipv4", "src-ip": "10.0.0.1", "dst-ip": "10.0.0.2", "protocol": "tcp", "src-port": 1, )"
    R"("dst-port": 2}, "context": {"experiment-id": 2, "activity-id": 9, "x": [true, false, null, -0.5e-3, )"
    R"("\u00e9\ud83d\ude00\n"]}})";

// simdjson says TAPE_ERROR for most of these whether the text stops early or not: every proper
// prefix of a good firefly must still be "truncated".
TEST(FireflyJson, EveryPrefixIsTruncated) {
  ASSERT_TRUE(parse_firefly(kFirefly).ok);
  for (std::size_t n = 1; n < kFirefly.size(); ++n) {
    auto r = parse_firefly(kFirefly.substr(0, n));
    ASSERT_FALSE(r.ok) << n;
    EXPECT_EQ(to_string(r.reason), "truncated") << kFirefly.substr(0, n) << "\n" << r.detail;
  }
}

TEST(FireflyJson, MalformedInTheMiddleIsNotTruncated) {
  for (const char* bad :
       {R"({"a" 1})", R"({"a": 1,, "b": 2})", R"({"a": 1} x)", R"({"a": 1}})", R"({"a": 1])",
        R"({"a": [1 2]})", R"({"a": {"b": 1 "c": 2}})", R"({"a": 01})", R"({"a": 1.})",
        R"({"a": tru})", R"({"a": "\ud800"})", R"({"a": "\udc00x"})", R"({"a": -})", R"({"a": 1}")",
        R"({"a": "b"} {)", R"({"a": 1 "b")", R"({"a": 00000000000000000000001})",
        "{\"a\": \"\x01\"}", "{\"a\": 1\x01}"}) {
    auto r = parse_firefly(bad);
    EXPECT_FALSE(r.ok) << bad;
    EXPECT_EQ(to_string(r.reason), "json") << bad << "\n" << r.detail;
    EXPECT_NE(r.detail.find("malformed JSON"), std::string::npos) << r.detail;
  }
}

std::string with(std::string from, const std::string& key, const std::string& value) {
  auto p = from.find("\"" + key + "\": ");
  EXPECT_NE(p, std::string::npos) << key;
  p += key.size() + 4;
  return from.replace(p, from.find_first_of(",}", p) - p, value);
}

// JSON's grammar (and Python's json.loads) takes numbers simdjson refuses with NUMBER_ERROR.
TEST(FireflyJson, NumbersBeyond64BitsOrDouble) {
  for (const char* n :
       {"123456789012345678901234567890", "-123456789012345678901234567890", "18446744073709551616",
        "-9223372036854775809", "1e999", "-1e999", "1.5e400"}) {
    auto r = parse_firefly(with(kFirefly, "version", n));
    EXPECT_TRUE(r.ok) << n << ": " << r.detail;
  }
  struct Case {
    const char* number;
    const char* reason;
    const char* detail;
  };
  for (const auto& c : std::vector<Case>{
           {"18446744073709551615", "range", "\"src-port\" = 18446744073709551615 is not 0..65535"},
           {"18446744073709551616", "range", "\"src-port\" = (more than 64 bits) is not 0..65535"},
           {"-9223372036854775808", "range", "\"src-port\" = -9223372036854775808 is not 0..65535"},
           {"-99999999999999999999", "range",
            "\"src-port\" = -(more than 64 bits) is not 0..65535"},
           {"9223372036854775807", "range", "\"src-port\" = 9223372036854775807 is not 0..65535"},
           {"1e999", "type",
            "\"src-port\" is a number with a fraction or exponent, not an integer"},
           {"-0", "ok", ""},
           {"65535", "ok", ""},
       }) {
    auto r = parse_firefly(with(kFirefly, "src-port", c.number));
    EXPECT_EQ(r.ok ? "ok" : to_string(r.reason), c.reason) << c.number << ": " << r.detail;
    if (!r.ok) {
      EXPECT_EQ(r.detail, c.detail);
    }
  }
  // Digits inside strings and malformed numbers are left alone.
  std::string out;
  EXPECT_FALSE(widen_numbers(R"({"a": "123456789012345678901234567890", "b": 1e5})", out));
  EXPECT_TRUE(widen_numbers(R"({"a": [99999999999999999999999, 01, "1e999"], "b": -1e999})", out));
  EXPECT_EQ(out, R"({"a": [18446744073709551615   , 01, "1e999"], "b": -1e308})");
  EXPECT_EQ(parse_firefly(with(kFirefly, "version", "123456789012345678901234567890.")).reason,
            RejectReason::kJson);
  EXPECT_EQ(parse_firefly(with(kFirefly, "version", "0123456789012345678901234567890")).reason,
            RejectReason::kJson);
}

TEST(FireflyJson, DepthLimit) {
  auto nested = [](std::size_t depth) {  // the root object counts as one
    return with(kFirefly, "version", std::string(depth - 1, '[') + std::string(depth - 1, ']'));
  };
  EXPECT_TRUE(parse_firefly(nested(kMaxJsonDepth)).ok);
  auto r = parse_firefly(nested(kMaxJsonDepth + 1));
  EXPECT_EQ(r.reason, RejectReason::kJson) << r.detail;
  // Too deep and cut short: too deep is what is wrong first.
  r = parse_firefly(R"({"a": )" + std::string(100, '['));
  EXPECT_EQ(r.reason, RejectReason::kJson) << r.detail;
}

TEST(FireflyJson, DuplicateKeysLastOneWins) {
  std::string d = kFirefly;
  d.insert(1, R"("flow-id": 7, "context": {"experiment-id": 1000000}, )");
  d.insert(d.size() - 1, R"(, "flow-lifecycle": {"state": "end", "end-time": null})");
  auto r = parse_firefly(d);
  ASSERT_TRUE(r.ok) << r.detail;
  EXPECT_EQ(r.flow.state, FlowState::kEnd);
  EXPECT_FALSE(r.flow.start_time);
  EXPECT_EQ(r.flow.experiment, 2);
  d.insert(d.size() - 1, R"(, "context": [])");
  EXPECT_EQ(parse_firefly(d).reason, RejectReason::kType);
}

}  // namespace
}  // namespace flowd::firefly
