// SPDX-License-Identifier: Apache-2.0
// The supervisor's runtime with test components: failure reporting, fan-out, and which components a
// reload keeps, restarts or stops.
#include "core/runtime.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <future>

#include "core/registry_loader.hpp"
#include "flowd/stop_fd.hpp"

namespace flowd {
namespace {

constexpr KeySpec kTestKeys[] = {
    {"setting", KeyType::kString, "a", "anything"},
    {"fail", KeyType::kBool, "no", "throw from run()"},
};

std::atomic<int> plugins_created{0}, plugins_stopped{0}, backends_created{0}, events_handled{0},
    backends_reloaded{0};

class TestPlugin : public Plugin {
 public:
  explicit TestPlugin(const Section& s) : fail_(s.get_bool("fail")) { ++plugins_created; }
  void run(std::stop_token stop, Publisher& out) override {
    if (fail_) throw std::runtime_error("the test plugin gave up");
    FlowID f;
    f.src = *IpAddress::parse("192.0.2.1");
    f.dst = *IpAddress::parse("192.0.2.2");
    f.plugin = "test";
    out.publish(f);
    StopFd s(stop);
    pollfd p{s.fd(), POLLIN, 0};
    poll(&p, 1, -1);
  }
  void stop() override { ++plugins_stopped; }

 private:
  bool fail_;
};

class TestBackend : public Backend {
 public:
  TestBackend() { ++backends_created; }
  void handle(const FlowID&) override { ++events_handled; }
  void reloaded() override { ++backends_reloaded; }
};

const PluginInfo kPlugin{"test", "test plugin", kTestKeys,
                         [](const Section& s, Context&, const char*) -> std::unique_ptr<Plugin> {
                           return std::make_unique<TestPlugin>(s);
                         }};
const BackendInfo kBackend{"test", "test backend", kTestKeys,
                           [](const Section&, Context&) -> std::unique_ptr<Backend> {
                             return std::make_unique<TestBackend>();
                           }};

Section section(std::span<const KeySpec> keys, std::map<std::string, std::string> v) {
  for (const auto& k : keys)
    if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
  return Section("x", keys, v, {});
}

Config config(const std::string& setting, bool fail = false) {
  Config c;
  c.core = section(std::span<const KeySpec>(), {});
  static constexpr KeySpec kCore[] = {{"hostname", KeyType::kString, "h", ""},
                                      {"work_dir", KeyType::kString, "", ""},
                                      {"queue_size", KeyType::kInt, "16", "", {}, 1, 100}};
  c.core = section(kCore, {});
  c.plugins.push_back(
      {&kPlugin, section(kTestKeys, {{"setting", setting}, {"fail", fail ? "yes" : "no"}})});
  c.backends.push_back({&kBackend, section(kTestKeys, {})});
  return c;
}

bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, ms) == 1;
}

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    plugins_created = plugins_stopped = backends_created = events_handled = backends_reloaded = 0;
  }
  prometheus::Registry metrics;
  MetricsHub hub{metrics};
  std::string error;
  RegistryHandle registry{ScitagsRegistry::parse(registry_snapshot_json(), error)};
};

TEST_F(RuntimeTest, AWorkerThatThrowsIsReportedThroughTheFailureFd) {
  Runtime rt(metrics, hub, registry);
  rt.apply(config("a", /*fail=*/true));
  ASSERT_TRUE(readable(rt.failure_fd(), 5000));
  EXPECT_EQ(rt.failure(), "plugin.test: the test plugin gave up");
}

TEST_F(RuntimeTest, EventsReachTheBackendAndAHealthyRuntimeReportsNothing) {
  {
    Runtime rt(metrics, hub, registry);
    rt.apply(config("a"));
    EXPECT_FALSE(readable(rt.failure_fd(), 100));
    rt.stop_all();
    EXPECT_EQ(events_handled, 1) << "stop_all drains the queue before stopping the backend";
  }
  EXPECT_EQ(plugins_stopped, 1);
}

TEST_F(RuntimeTest, ReloadKeepsUnchangedComponentsAndRestartsChangedOnes) {
  Runtime rt(metrics, hub, registry);
  rt.apply(config("a"));
  rt.apply(config("a"));
  EXPECT_EQ(plugins_created, 1) << "an unchanged plugin keeps running";
  EXPECT_EQ(backends_created, 1);
  rt.apply(config("b"));
  EXPECT_EQ(plugins_created, 2) << "a changed plugin is restarted";
  EXPECT_EQ(plugins_stopped, 1);
  EXPECT_EQ(backends_created, 1) << "the unchanged backend keeps its queue";
  EXPECT_EQ(backends_reloaded, 2)
      << "a kept backend is told about each reload (udp_firefly re-discovers its IPs)";
  EXPECT_NE(rt.summary().find("plugins=test backends=test"), std::string::npos) << rt.summary();
}

}  // namespace
}  // namespace flowd
