// SPDX-License-Identifier: Apache-2.0
// The netflow plugin's `rules` (src/plugins/netflow/flow_rules.hpp): `PREFIX[:PORT] EXPERIMENT
// ACTIVITY`, parsed against the shipped registry, and matched on either end of a flow.
#include "plugins/netflow/flow_rules.hpp"

#include <gtest/gtest.h>

#include "core/registry_loader.hpp"

namespace flowd::netflow {
namespace {

class Rules : public ::testing::Test {
 protected:
  Rules() {
    std::string error;
    reg = ScitagsRegistry::parse(registry_snapshot_json(), error);
    EXPECT_TRUE(reg) << error;
  }
  std::optional<FlowRule> parse(const std::string& text) {
    error.clear();
    return parse_rule(text, *reg, error);
  }
  static FlowID flow(const char* src, std::uint16_t sport, const char* dst, std::uint16_t dport) {
    FlowID f;
    f.src = *IpAddress::parse(src);
    f.dst = *IpAddress::parse(dst);
    f.src_port = sport;
    f.dst_port = dport;
    return f;
  }
  std::shared_ptr<const ScitagsRegistry> reg;
  std::string error;
};

TEST_F(Rules, ParsesNamesNumbersPrefixAndPort) {
  auto r = parse("192.0.2.0/24:5201 cms 4");
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->prefix.address, *IpAddress::parse("192.0.2.0"));
  EXPECT_EQ(r->prefix.length, 24u);
  EXPECT_EQ(r->port, std::optional<std::uint16_t>(5201));
  EXPECT_EQ(r->experiment, 3u);  // cms
  EXPECT_EQ(r->activity, 4u);
  r = parse("2001:db8::/32 atlas Debug");
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->prefix.length, 32u);
  EXPECT_FALSE(r->port);
  EXPECT_EQ(r->experiment, 2u);
  EXPECT_EQ(r->activity, 9u);
  r = parse("0.0.0.0/0 2 9");
  ASSERT_TRUE(r) << error;
  EXPECT_EQ(r->prefix.length, 0u);
}

TEST_F(Rules, RefusesMalformedRulesWithAReason) {
  EXPECT_FALSE(parse("192.0.2.0/24 cms"));
  EXPECT_NE(error.find("expected"), std::string::npos) << error;
  EXPECT_FALSE(parse("192.0.2.0/24 cms 4 extra"));
  EXPECT_NE(error.find("expected"), std::string::npos) << error;
  EXPECT_FALSE(parse("192.0.2.0 cms 4"));
  EXPECT_NE(error.find("/length"), std::string::npos) << error;
  for (const char* bad : {"192.0.2.0/33 cms 4", "2001:db8::/129 cms 4", "192.0.2.0/x cms 4",
                          "192.0.2.300/24 cms 4", "192.0.2.0/24x cms 4", "/24 cms 4"}) {
    EXPECT_FALSE(parse(bad)) << bad;
    EXPECT_NE(error.find("is not an address or CIDR network"), std::string::npos)
        << bad << ": " << error;
  }
  // A host address where a network was meant: refused with the network it would have meant.
  EXPECT_FALSE(parse("192.0.2.77/24 cms 4"));
  EXPECT_NE(error.find("has host bits set (the network is 192.0.2.0/24)"), std::string::npos)
      << error;
  for (const char* bad : {"192.0.2.0/24:65536 cms 4", "192.0.2.0/24:80x cms 4"}) {
    EXPECT_FALSE(parse(bad)) << bad;
    EXPECT_NE(error.find("bad port"), std::string::npos) << bad << ": " << error;
  }
  EXPECT_FALSE(parse("192.0.2.0/24 nosuchexperiment 4"));
  EXPECT_NE(error.find("unknown experiment/activity"), std::string::npos) << error;
  EXPECT_FALSE(parse("192.0.2.0/24 cms nosuchactivity"));
  EXPECT_NE(error.find("unknown experiment/activity"), std::string::npos) << error;
}

TEST_F(Rules, PrefixContainsOnBitBoundaries) {
  const auto p = *IpAddress::parse("192.0.2.128");
  EXPECT_TRUE((net::Prefix{p, 25}).contains(*IpAddress::parse("192.0.2.255")));
  EXPECT_FALSE((net::Prefix{p, 25}).contains(*IpAddress::parse("192.0.2.127")));
  EXPECT_TRUE((net::Prefix{p, 0}).contains(*IpAddress::parse("198.51.100.1")));
  EXPECT_TRUE((net::Prefix{p, 32}).contains(p));
  EXPECT_FALSE((net::Prefix{p, 0}).contains(*IpAddress::parse("::1")))
      << "another family never matches";
  const auto p6 = *IpAddress::parse("2001:db8::");
  EXPECT_TRUE((net::Prefix{p6, 33}).contains(*IpAddress::parse("2001:db8:7fff::1")));
  EXPECT_FALSE((net::Prefix{p6, 33}).contains(*IpAddress::parse("2001:db8:8000::1")));
}

TEST_F(Rules, MatchEitherEndThePortOnThatEndAndTheFirstRuleWins) {
  std::vector<FlowRule> rules{*parse("192.0.2.0/24:5201 cms 4"), *parse("198.51.100.0/24 atlas 9"),
                              *parse("0.0.0.0/0 2 1")};
  // Destination in the first prefix with its port.
  const FlowRule* r = match_rule(rules, flow("203.0.113.1", 40000, "192.0.2.7", 5201));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->experiment, 3u);
  // Source end, reversed flow: the port must be on the same end as the address.
  r = match_rule(rules, flow("192.0.2.7", 5201, "203.0.113.1", 40000));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->experiment, 3u);
  // Address in the prefix but the port on the other end: not the first rule; the catch-all.
  r = match_rule(rules, flow("192.0.2.7", 40000, "203.0.113.1", 5201));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->activity, 1u);
  r = match_rule(rules, flow("198.51.100.9", 1, "203.0.113.1", 2));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->activity, 9u);
  // IPv6 matches none of the IPv4 rules.
  EXPECT_EQ(match_rule(rules, flow("2001:db8::1", 1, "2001:db8::2", 5201)), nullptr);
  EXPECT_EQ(match_rule({}, flow("192.0.2.7", 1, "192.0.2.8", 5201)), nullptr);
}

}  // namespace
}  // namespace flowd::netflow
