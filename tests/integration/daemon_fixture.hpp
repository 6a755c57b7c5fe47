// SPDX-License-Identifier: Apache-2.0
// A running flowd with np_api, udp_firefly and prometheus on private ports, for one test.
#pragma once

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "harness.hpp"

namespace flowd::test {

class Daemon {
 public:
  Daemon() : rx4(false), rx6(true, rx4.port()), prom_port(free_tcp_port()) {}

  std::string pipe() const { return dir.file("flowd.np"); }
  std::string metrics_url() const {
    return "http://127.0.0.1:" + std::to_string(prom_port) + "/metrics";
  }

  // The default INI configuration, with `extra` appended (extra sections or keys).
  std::string config(const std::string& udp_extra = "", const std::string& core_extra = "") const {
    return "[flowd]\nplugins = np_api\nbackends = udp_firefly, prometheus\nwork_dir = " +
           dir.file("cache") + "\n" + core_extra + "\n[plugin.np_api]\npath = " + pipe() +
           "\n\n[backend.udp_firefly]\nport = " + std::to_string(rx4.port()) + "\n" + udp_extra +
           "\n[backend.prometheus]\nlisten = 127.0.0.1:" + std::to_string(prom_port) + "\n";
  }

  // config() with `plugins` run beside np_api ("netflow", "np_api, sflow"...); sections are
  // appended by the caller.
  std::string config_with_plugins(const std::string& plugins) const {
    std::string cfg = config();
    cfg.replace(cfg.find("plugins = np_api"), 16, "plugins = np_api, " + plugins);
    return cfg;
  }

  // Writes the config and starts flowd; returns once READY=1 arrived (or fails the test).
  // `prefix` runs before the binary (e.g. prlimit --nofile=64:64 --); `args` follow `-c FILE`.
  void start(const std::string& config_text, const std::string& name = "flowd.cfg",
             const std::vector<std::string>& env = {}, const std::vector<std::string>& prefix = {},
             const std::vector<std::string>& args = {}) {
    launch(config_text, name, env, prefix, args);
    auto ready = notify->wait_for("READY=1");
    ASSERT_TRUE(ready) << "flowd did not report READY=1; log:\n" << proc->log();
    ready_message = *ready;
  }

  // As start(), without waiting for READY=1 (a test that stops flowd while it starts).
  void launch(const std::string& config_text, const std::string& name = "flowd.cfg",
              const std::vector<std::string>& env = {}, const std::vector<std::string>& prefix = {},
              const std::vector<std::string>& args = {}) {
    dir.write(name, config_text);
    config_path = dir.file(name);
    notify.reset();  // a restart: the old socket's destructor would unlink the new one's path
    notify = std::make_unique<NotifySocket>(dir.file("notify"));
    std::vector<std::string> argv{"-c", config_path};
    argv.insert(argv.end(), args.begin(), args.end());
    proc = std::make_unique<FlowdProcess>(argv, dir.file("flowd.log"), notify->path(), env, prefix);
  }

  int stop() {
    proc->signal(SIGTERM);
    auto rc = proc->wait(5s);
    EXPECT_TRUE(rc) << "flowd did not exit within 5 s of SIGTERM";
    return rc.value_or(-1);
  }

  std::string scrape() const { return http_get(metrics_url()).value_or(""); }
  // Scrapes until `series` reaches `want` (counters are updated just after the work they count, so
  // a test that saw the work may scrape a moment too early) or `timeout` passes; returns the last
  // scrape.
  std::string scrape_until(const std::string& series, double want,
                           std::chrono::milliseconds timeout = 5s) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string m = scrape();
    while (metric_sum(m, series).value_or(0) < want &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
      m = scrape();
    }
    return m;
  }

  TempDir dir;
  UdpReceiver rx4;
  UdpReceiver rx6;
  int prom_port;
  std::string config_path;
  std::string ready_message;
  std::unique_ptr<NotifySocket> notify;
  std::unique_ptr<FlowdProcess> proc;
};

}  // namespace flowd::test
