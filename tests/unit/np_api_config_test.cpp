// SPDX-License-Identifier: Apache-2.0
// NpApiConfig::from: the [plugin.np_api] section as typed values; a group that does not exist is a
// ConfigError naming the section and the key.
#include "plugins/np_api/np_api_config.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace flowd::np_api {
namespace {

Section section(std::map<std::string, std::string> v) {
  for (const auto& k : config_keys())
    if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
  return Section("plugin.np_api", config_keys(), v, {});
}

TEST(NpApiConfig, DefaultsAsTyped) {
  auto c = NpApiConfig::from(section({}));
  EXPECT_EQ(c.path, "/var/run/flowd");
  EXPECT_EQ(c.mode, 0666u);
  EXPECT_FALSE(c.group);
  EXPECT_EQ(c.max_line_length, 4096u);
  EXPECT_EQ(c.partial_timeout, std::chrono::milliseconds(1000));
  EXPECT_EQ(c.check_interval, std::chrono::seconds(60));
}

TEST(NpApiConfig, ValuesParsed) {
  auto c = NpApiConfig::from(section({{"path", "/run/x.np"},
                                      {"mode", "0620"},
                                      {"group", "0"},
                                      {"max_line_length", "100"},
                                      {"partial_timeout_ms", "250"},
                                      {"check_interval", "2m"}}));
  EXPECT_EQ(c.path, "/run/x.np");
  EXPECT_EQ(c.mode, 0620u);
  ASSERT_TRUE(c.group);
  EXPECT_EQ(*c.group, 0u);
  EXPECT_EQ(c.max_line_length, 100u);
  EXPECT_EQ(c.partial_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(c.check_interval, std::chrono::seconds(120));
  EXPECT_EQ(NpApiConfig::from(section({{"check_interval", "0"}})).check_interval,
            std::chrono::seconds(0))
      << "0: no check";
}

TEST(NpApiConfig, AGroupThatDoesNotExistNamesSectionAndKey) {
  try {
    NpApiConfig::from(section({{"group", "no-such-group-here"}}));
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("[plugin.np_api] group: no group named"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flowd::np_api
