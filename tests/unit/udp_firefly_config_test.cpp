// SPDX-License-Identifier: Apache-2.0
// UdpFireflyConfig::from: the [backend.udp_firefly] section as typed values, and the semantic
// checks the key table cannot make, each a ConfigError naming the section and the key.
#include "backends/udp_firefly/udp_firefly_config.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace flowd::udp_firefly {
namespace {

Section section(std::map<std::string, std::string> v) {
  for (const auto& k : config_keys())
    if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
  return Section("backend.udp_firefly", config_keys(), v, {});
}

std::string error_of(std::map<std::string, std::string> v) {
  try {
    UdpFireflyConfig::from(section(std::move(v)));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(UdpFireflyConfig, DefaultsAsTyped) {
  auto c = UdpFireflyConfig::from(section({}));
  EXPECT_EQ(c.port, 10514);
  EXPECT_TRUE(c.collectors.empty());
  EXPECT_EQ(c.collector_resolve_interval, std::chrono::minutes(5));
  EXPECT_TRUE(c.syslog_header);
  EXPECT_EQ(c.max_tracked_flows, 100000u);
  EXPECT_FALSE(c.ip_discovery);
  EXPECT_EQ(c.discovery.timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(c.discovery.attempts, 3);
  EXPECT_EQ(c.discovery.stun_servers.size(), 2u);
  EXPECT_FALSE(c.netlink);
  EXPECT_EQ(c.ongoing_interval, std::chrono::seconds(0));
  EXPECT_FALSE(c.forward_observed);
}

TEST(UdpFireflyConfig, CollectorPortDefaultsToPort) {
  auto c = UdpFireflyConfig::from(section({{"port", "2000"}, {"collector", "collector.example"}}));
  ASSERT_EQ(c.collectors.size(), 1u);
  EXPECT_EQ(c.collectors[0].host, "collector.example");
  EXPECT_EQ(c.collectors[0].port, 2000);
  c = UdpFireflyConfig::from(
      section({{"collector", "[2001:db8::1]:9000"}, {"forward_observed", "yes"}}));
  ASSERT_EQ(c.collectors.size(), 1u);
  EXPECT_EQ(c.collectors[0].port, 9000);
  EXPECT_TRUE(c.forward_observed);
}

// The perfSONAR deployments relay to a global and a regional collector (issue 14).
TEST(UdpFireflyConfig, SeveralCollectorsInOrder) {
  auto c = UdpFireflyConfig::from(section({{"collector", "a.example.org, b.example.org:10515"},
                                           {"collector_resolve_interval", "30s"}}));
  ASSERT_EQ(c.collectors.size(), 2u);
  EXPECT_EQ(c.collectors[0].to_string(), "a.example.org:10514");
  EXPECT_EQ(c.collectors[1].to_string(), "b.example.org:10515");
  EXPECT_EQ(c.collector_resolve_interval, std::chrono::seconds(30));
}

TEST(UdpFireflyConfig, CollectorsAreDistinctAndFew) {
  // The same collector twice (the default port written out or not) would get every firefly twice.
  EXPECT_EQ(error_of({{"collector", "a.example.org, a.example.org:10514"}}),
            "[backend.udp_firefly] collector: 'a.example.org:10514' is listed twice");
  // Names compare case-insensitively, addresses as addresses (issue 14).
  EXPECT_EQ(error_of({{"collector", "a.example.org, A.Example.ORG"}}),
            "[backend.udp_firefly] collector: 'A.Example.ORG:10514' is listed twice (as "
            "'a.example.org:10514')");
  EXPECT_EQ(error_of({{"collector", "127.0.0.2, [::ffff:127.0.0.2]"}}),
            "[backend.udp_firefly] collector: '[::ffff:127.0.0.2]:10514' is listed twice (as "
            "'127.0.0.2:10514')");
  EXPECT_EQ(error_of({{"collector", "a.example.org, A.example.org:10515"}}), "");
  std::string nine;
  for (int i = 0; i < 9; ++i) nine += "c" + std::to_string(i) + ".example, ";
  EXPECT_EQ(error_of({{"collector", nine}}),
            "[backend.udp_firefly] collector: at most 8 collectors, got 9");
}

TEST(UdpFireflyConfig, KeysThatNeedEachOther) {
  EXPECT_EQ(error_of({{"forward_observed", "yes"}}),
            "[backend.udp_firefly] forward_observed: needs collector (observed flows go nowhere "
            "else)");
  EXPECT_EQ(error_of({{"ongoing_interval", "5"}}),
            "[backend.udp_firefly] ongoing_interval: needs netlink = yes");
  EXPECT_EQ(error_of({{"ongoing_interval", "5"}, {"netlink", "yes"}}), "");
}

TEST(UdpFireflyConfig, AnUnparsableCollectorIsAConfigError) {
  const std::string e = error_of({{"collector", "[2001:db8::1"}});
  EXPECT_EQ(e.rfind("[backend.udp_firefly] collector: ", 0), 0u) << e;
}

}  // namespace
}  // namespace flowd::udp_firefly
