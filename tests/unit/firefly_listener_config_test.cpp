// SPDX-License-Identifier: Apache-2.0
// FireflyListenerConfig::from: the [plugin.firefly] section as typed values; an `allow` entry that
// is not an address or a CIDR network is a ConfigError naming the section and the key.
#include "plugins/firefly/firefly_listener_config.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace flowd::firefly {
namespace {

Section section(std::map<std::string, std::string> v) {
  for (const auto& k : config_keys())
    if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
  return Section("plugin.firefly", config_keys(), v, {});
}

TEST(FireflyListenerConfig, DefaultsAsTyped) {
  auto c = FireflyListenerConfig::from(section({}));
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 10514);
  EXPECT_EQ(c.max_size, 16384u);
  EXPECT_EQ(c.rcvbuf, 8388608);
  EXPECT_TRUE(c.allow.empty());
}

TEST(FireflyListenerConfig, AllowListParsedAndABadEntryNamed) {
  auto c = FireflyListenerConfig::from(section({{"allow", "192.0.2.0/24, 2001:db8::1"}}));
  ASSERT_EQ(c.allow.size(), 2u);
  EXPECT_TRUE(c.allow[0].contains(*IpAddress::parse("192.0.2.77")));
  EXPECT_TRUE(c.allow[1].contains(*IpAddress::parse("2001:db8::1")));
  EXPECT_FALSE(c.allow[1].contains(*IpAddress::parse("2001:db8::2")));
  for (const char* bad : {"banana", "192.0.2.0/33", "2001:db8::/129"}) {
    try {
      FireflyListenerConfig::from(section({{"allow", bad}}));
      ADD_FAILURE() << bad << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("[plugin.firefly] allow: '"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace flowd::firefly
