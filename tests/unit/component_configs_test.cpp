// SPDX-License-Identifier: Apache-2.0
// PrometheusConfig, EbpfConfig and IperfConfig ::from: the [backend.prometheus], [backend.ebpf] and
// [plugin.iperf] sections as typed values; what only these can check (an empty listen, a tag
// against the registry, an interface name the kernel cannot have, a port range) is a ConfigError
// naming section and key.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "backends/ebpf/ebpf_config.hpp"
#include "backends/prometheus/prometheus_config.hpp"
#include "core/registry_loader.hpp"
#include "flowd/scitags_label.hpp"
#include "plugins/iperf/iperf_config.hpp"

namespace flowd {
namespace {

Section section(const char* name, std::span<const KeySpec> keys,
                std::map<std::string, std::string> v) {
  for (const auto& k : keys)
    if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
  return Section(name, keys, v, {});
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(PrometheusConfig, DefaultsAsTyped) {
  using namespace prometheus_backend;
  auto c = PrometheusConfig::from(section("backend.prometheus", config_keys(), {}));
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 9000);
  EXPECT_EQ(c.max_active_flows, 100000u);
  EXPECT_TRUE(c.flow_metrics);
  EXPECT_EQ(c.max_flow_series, 10000u);
}

TEST(PrometheusConfig, ValuesParsed) {
  using namespace prometheus_backend;
  auto c = PrometheusConfig::from(section("backend.prometheus", config_keys(),
                                          {{"listen", "[::1]:9100"},
                                           {"max_active_flows", "10"},
                                           {"flow_metrics", "no"},
                                           {"max_flow_series", "3"}}));
  EXPECT_EQ(c.listen.host, "::1");
  EXPECT_EQ(c.listen.port, 9100);
  EXPECT_EQ(c.max_active_flows, 10u);
  EXPECT_FALSE(c.flow_metrics);
  EXPECT_EQ(c.max_flow_series, 3u);
}

// The key table lets an empty endpoint through (other components' optional addresses); /metrics
// needs one, and before the typed config this failed only when the backend started.
TEST(PrometheusConfig, AnEmptyListenIsRefusedBeforeStart) {
  using namespace prometheus_backend;
  auto e = error_of([] {
    PrometheusConfig::from(section("backend.prometheus", config_keys(), {{"listen", ""}}));
  });
  EXPECT_NE(e.find("[backend.prometheus] listen:"), std::string::npos) << e;
}

class EbpfConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    reg_ = ScitagsRegistry::parse(registry_snapshot_json(), error);
    ASSERT_TRUE(reg_) << error;
  }
  ebpf::EbpfConfig from(std::map<std::string, std::string> v) {
    return ebpf::EbpfConfig::from(section("backend.ebpf", ebpf::config_keys(), std::move(v)),
                                  *reg_);
  }
  std::shared_ptr<const ScitagsRegistry> reg_;
};

TEST_F(EbpfConfigTest, DefaultsAsTyped) {
  auto c = from({});
  EXPECT_TRUE(c.interfaces.empty());
  EXPECT_EQ(c.max_flows, 100000u);
  EXPECT_FALSE(c.match_all);
  EXPECT_EQ(c.match_all_label, 0u);
  EXPECT_EQ(c.pin_path, "/sys/fs/bpf/flowd/flow_labels");
}

TEST_F(EbpfConfigTest, MatchAllTakesRegistryNamesAndIds) {
  auto by_name = from({{"match_all", "yes"}, {"experiment", "atlas"}, {"activity", "Debug"}});
  auto by_id = from({{"match_all", "yes"}, {"experiment", "2"}, {"activity", "9"}});
  EXPECT_TRUE(by_name.match_all);
  // atlas/Debug is 2/9 in the shipped registry (flowd label encode 2 9 = 0x10024, entropy 0).
  EXPECT_EQ(by_name.match_all_label, by_id.match_all_label);
  EXPECT_EQ(by_id.match_all_label, make_label(2, 9, 0));
}

TEST_F(EbpfConfigTest, MatchAllWithoutAKnownTagIsRefused) {
  auto e = error_of([&] { from({{"match_all", "yes"}, {"experiment", "no-such-experiment"}}); });
  EXPECT_NE(e.find("[backend.ebpf] match_all = yes needs experiment"), std::string::npos) << e;
}

// experiment/activity without match_all were accepted silently, as if every packet got that tag
// (issue 15): refused, as a scanner's activity without experiment is.
TEST_F(EbpfConfigTest, ExperimentOrActivityWithoutMatchAllIsRefused) {
  for (const auto& keys : std::vector<std::map<std::string, std::string>>{
           {{"experiment", "atlas"}, {"activity", "Debug"}},
           {{"experiment", "2"}},
           {{"activity", "9"}, {"match_all", "no"}}}) {
    auto e = error_of([&] { from(keys); });
    EXPECT_NE(e.find("[backend.ebpf] experiment/activity: used only with match_all = yes"),
              std::string::npos)
        << e;
  }
}

TEST_F(EbpfConfigTest, InterfaceNamesTheKernelCannotHaveAreRefused) {
  EXPECT_EQ(from({{"interfaces", "eth0, veth-a.100"}}).interfaces.size(), 2u);
  for (const char* bad : {"a/b", "sixteen-bytes-xx", ".."}) {
    auto e = error_of([&] { from({{"interfaces", bad}}); });
    EXPECT_NE(e.find("[backend.ebpf] interfaces: '"), std::string::npos) << bad << ": " << e;
  }
}

TEST_F(EbpfConfigTest, IperfDefaultsAndPortMode) {
  auto sec = [](std::map<std::string, std::string> v) {
    return section("plugin.iperf", iperf::config_keys(), std::move(v));
  };
  auto d = iperf::IperfConfig::from(sec({}), *reg_);
  EXPECT_EQ(d.flow_ids.size(), 8u);  // 2:9, 2:19, 3:3, 3:4, 4:3, 4:4, 5:10, 5:14
  EXPECT_EQ(d.flow_ids[0].experiment, 2);
  EXPECT_EQ(d.flow_ids[0].activity, 9);
  EXPECT_EQ(d.process, "iperf3");
  EXPECT_FALSE(d.ports);
  auto rr =
      iperf::IperfConfig::from(sec({{"flow_ids", "atlas:Debug"}, {"ports", "5201-5299"}}), *reg_);
  ASSERT_EQ(rr.flow_ids.size(), 1u);
  EXPECT_EQ(rr.flow_ids[0].experiment, 2);
  ASSERT_TRUE(rr.ports);
  EXPECT_EQ(rr.ports->first, 5201u);
  EXPECT_EQ(rr.ports->second, 5299u);
  EXPECT_EQ(iperf::IperfConfig::from(sec({{"ports", "5201"}}), *reg_).ports->second, 5201u);
}

TEST_F(EbpfConfigTest, IperfRefusesBadPairsAndPorts) {
  auto err = [&](std::map<std::string, std::string> v) {
    return error_of([&] {
      iperf::IperfConfig::from(section("plugin.iperf", iperf::config_keys(), std::move(v)), *reg_);
    });
  };
  EXPECT_NE(err({{"flow_ids", "2"}}).find("[plugin.iperf] flow_ids: '2'"), std::string::npos);
  EXPECT_NE(err({{"flow_ids", ""}}).find("at least one"), std::string::npos);
  for (const char* bad : {"5299-5201", "0-10", "70000", "a-b", "-"})
    EXPECT_NE(err({{"ports", bad}}).find("[plugin.iperf] ports:"), std::string::npos) << bad;
}

}  // namespace
}  // namespace flowd
