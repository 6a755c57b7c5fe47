// SPDX-License-Identifier: Apache-2.0
// netflow::NetflowConfig::from: the typed netflow/sflow config, and every semantic check of the
// section in one place (bad CIDR, rules, listen endpoints), each naming its section and key.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/registry_loader.hpp"
#include "plugins/netflow/netflow_config.hpp"

namespace flowd::netflow {
namespace {

std::shared_ptr<const ScitagsRegistry> registry() {
  std::string error;
  auto r = ScitagsRegistry::parse(registry_snapshot_json(), error);
  EXPECT_TRUE(r) << error;
  return r;
}

Section section(std::span<const KeySpec> keys, const std::string& name,
                std::map<std::string, std::string> v) {
  for (const auto& k : keys)
    if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
  return Section(name, keys, v, {});
}

NetflowConfig netflow(std::map<std::string, std::string> v) {
  return NetflowConfig::from(section(netflow_keys(), "plugin.netflow", std::move(v)),
                             Wire::kNetflow, *registry());
}

// The ConfigError's message, or "" when none was thrown.
std::string error_of(std::map<std::string, std::string> v) {
  try {
    netflow(std::move(v));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(NetflowConfig, DefaultsAreTyped) {
  auto c = netflow({});
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].host, "0.0.0.0");
  EXPECT_EQ(c.listen[0].port, 2055);
  EXPECT_EQ(c.listen[1].port, 4739);
  ASSERT_EQ(c.tcp_listen.size(), 1u);
  EXPECT_EQ(c.tcp_listen[0].port, 4739);
  EXPECT_EQ(c.idle_timeout, std::chrono::seconds(60));
  EXPECT_EQ(c.limits.template_timeout, std::chrono::seconds(1800));
  EXPECT_EQ(c.limits.max_templates_per_exporter, 4096u);
  EXPECT_EQ(c.workers, 1u);
  EXPECT_EQ(c.rcvbuf, 8388608);
  EXPECT_EQ(c.label_trust, LabelTrust::kRegistered);
  EXPECT_TRUE(c.allow.empty());
  EXPECT_TRUE(c.rules.empty());
}

TEST(NetflowConfig, ValuesAreParsed) {
  auto c = netflow({{"listen", "[::1]:9995, 127.0.0.1"},
                    {"tcp_listen", ""},
                    {"allow", "192.0.2.0/24, 2001:db8::1"},
                    {"label_networks", "fd00::/8"},
                    {"rules", "192.0.2.0/24:5201 cms 4"},
                    {"apply_sampling", "yes"},
                    {"label_trust", "off"}});
  ASSERT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.listen[0].host, "::1");
  EXPECT_EQ(c.listen[0].port, 9995);
  EXPECT_EQ(c.listen[1].port, 2055);  // the default port
  EXPECT_TRUE(c.tcp_listen.empty());
  ASSERT_EQ(c.allow.size(), 2u);
  EXPECT_EQ(c.allow[1].length, 128u);
  EXPECT_TRUE(c.allow[0].contains(*IpAddress::parse("192.0.2.77")));
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].prefix.length, 24u);
  EXPECT_EQ(c.rules[0].port, 5201);
  EXPECT_TRUE(c.limits.apply_sampling);
  EXPECT_TRUE(c.sflow_limits.apply_sampling);
  EXPECT_EQ(c.label_trust, LabelTrust::kOff);
}

TEST(NetflowConfig, BadValuesNameSectionAndKey) {
  EXPECT_EQ(error_of({{"allow", "192.0.2.0/33"}}),
            "[plugin.netflow] allow: '192.0.2.0/33' is not an address or CIDR network");
  EXPECT_EQ(error_of({{"label_networks", "fd00::/8, nonsense"}}),
            "[plugin.netflow] label_networks: 'nonsense' is not an address or CIDR network");
  EXPECT_EQ(error_of({{"label_networks", "2001:db8:1:2::5/48"}}),
            "[plugin.netflow] label_networks: '2001:db8:1:2::5/48' has host bits set (the network "
            "is 2001:db8:1::/48)");
  EXPECT_EQ(
      error_of({{"allow", "198.51.100.1/0"}}),
      "[plugin.netflow] allow: '198.51.100.1/0' has host bits set (the network is 0.0.0.0/0)");
  EXPECT_EQ(error_of({{"listen", "127.0.0.1:99999"}}),
            "[plugin.netflow] listen: cannot parse 127.0.0.1:99999");
  EXPECT_EQ(error_of({{"tcp_listen", "[::1"}}), "[plugin.netflow] tcp_listen: cannot parse [::1");
  EXPECT_NE(
      error_of({{"rules", "192.0.2.0/24 cms"}}).find("[plugin.netflow] rules: '192.0.2.0/24 cms'"),
      std::string::npos);
  EXPECT_NE(error_of({{"rules", "192.0.2.0/40 cms 4"}}).find("is not an address or CIDR network"),
            std::string::npos);
  EXPECT_NE(error_of({{"rules", "192.0.2.0/24:70000 cms 4"}}).find("bad port"), std::string::npos);
  EXPECT_NE(error_of({{"rules", "192.0.2.0/24 nosuchexperiment 4"}}).find("unknown experiment"),
            std::string::npos);
}

TEST(NetflowConfig, SflowHasNoTcpAndItsOwnPort) {
  auto c =
      NetflowConfig::from(section(sflow_keys(), "plugin.sflow", {}), Wire::kSflow, *registry());
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].port, 6343);
  EXPECT_TRUE(c.tcp_listen.empty());
  EXPECT_EQ(c.section, "plugin.sflow");
}

}  // namespace
}  // namespace flowd::netflow
