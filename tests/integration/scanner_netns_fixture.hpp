// SPDX-License-Identifier: Apache-2.0
// The fixture of the connection-plugin tests (scanner_netns_test.cpp: netlink, netstat, iperf;
// kernel_netns_test.cpp: kernel): two namespaces joined by a veth pair with IPv4 and IPv6
// addresses, flowd started inside namespace a, its events received as fireflies.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include "harness.hpp"
#include "netns_scope.hpp"

namespace flowd::test {

struct Event {
  std::string state;
  std::string src, dst;
  int src_port = 0, dst_port = 0;
  int exp = 0, act = 0;
  std::string start_time, end_time;  // flow-lifecycle, RFC 3339; empty when absent
};

inline std::optional<Event> parse_firefly(const std::string& datagram) {
  auto brace = datagram.find('{');
  if (brace == std::string::npos) return std::nullopt;
  auto j = nlohmann::json::parse(datagram.substr(brace), nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  Event e;
  e.state = j["flow-lifecycle"]["state"];
  e.src = j["flow-id"]["src-ip"];
  e.dst = j["flow-id"]["dst-ip"];
  e.src_port = j["flow-id"]["src-port"];
  e.dst_port = j["flow-id"]["dst-port"];
  e.exp = j["context"]["experiment-id"];
  e.act = j["context"]["activity-id"];
  const auto& life = j["flow-lifecycle"];
  if (life.contains("start-time")) e.start_time = life["start-time"];
  if (life.contains("end-time")) e.end_time = life["end-time"];
  return e;
}

// Closes the file descriptors it holds.
struct Fds {
  std::vector<int> fds;
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

class ScannerNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for network namespaces";
    net = std::make_unique<NetnsPair>();
    std::string out;
    // IPv4 beside the pair's ULA; 198.19/16 and fd00:f10e::/64 play the "internal" networks.
    const std::string a = "ip -n " + net->a + " addr add ", b = "ip -n " + net->b + " addr add ";
    ASSERT_EQ(run_shell("set -e; " + a + "198.18.0.1/24 dev " + net->veth_a + "; " + b +
                            "198.18.0.2/24 dev " + net->veth_b + "; " + a + "198.19.0.1/24 dev " +
                            net->veth_a + "; " + b + "198.19.0.2/24 dev " + net->veth_b + "; " + a +
                            "fd00:f10e::1/64 dev " + net->veth_a + " nodad; " + b +
                            "fd00:f10e::2/64 dev " + net->veth_b + " nodad",
                        "", out),
              0)
        << out;
    NetnsScope in_a(net->a);
    rx = std::make_unique<UdpReceiver>();
  }

  void TearDown() override {
    proc.reset();
    if (iperf_pid > 0) {
      std::string out;
      run_shell("kill " + std::to_string(iperf_pid) + " 2>/dev/null", "", out);
    }
  }

  std::string config(const std::string& plugin, const std::string& keys,
                     const std::string& prom_extra = "") const {
    return "[flowd]\nplugins = " + plugin +
           "\nbackends = udp_firefly, prometheus\nwork_dir = " + dir.file("cache") + "\n[plugin." +
           plugin + "]\n" + keys + "\n[backend.udp_firefly]\nport = " + std::to_string(rx->port()) +
           "\ncollector = 127.0.0.1\n[backend.prometheus]\nlisten = 127.0.0.1:9977\n" + prom_extra;
  }

  // Starts flowd inside namespace a (behind `prefix`, e.g. setpriv) and waits until the plugin's
  // line `ready` is logged: its first scan is done (later connections are new).
  void start_flowd(const std::string& cfg, const std::string& ready = "scanning TCP connections",
                   const std::vector<std::string>& prefix = {}) {
    proc.reset();
    dir.write("flowd.cfg", cfg);
    ::unlink(dir.file("flowd.log").c_str());
    notify.reset();
    notify = std::make_unique<NotifySocket>(dir.file("notify"));
    proc = std::make_unique<FlowdProcess>(std::vector<std::string>{"-c", dir.file("flowd.cfg")},
                                          dir.file("flowd.log"), notify->path(),
                                          std::vector<std::string>{}, command_prefix(prefix));
    ASSERT_TRUE(notify->wait_for("READY=1")) << proc->log();
    for (int i = 0; i < 300 && proc->log().find(ready) == std::string::npos; ++i) usleep(10000);
    ASSERT_NE(proc->log().find(ready), std::string::npos) << proc->log();
  }

  // Kills flowd (-9, as start_flowd() does) and removes the flow journal it kept in work_dir, so
  // that the next start_flowd() is a fresh flowd, not one that follows on what this one reported.
  void kill_and_forget() {
    proc.reset();
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir.file("cache"), ec))
      if (e.path().filename().string().rfind("flows.", 0) == 0) std::filesystem::remove(e.path());
  }

  std::vector<std::string> command_prefix(const std::vector<std::string>& inner) const {
    std::vector<std::string> p{"/usr/sbin/ip", "netns", "exec", net->a};
    p.insert(p.end(), inner.begin(), inner.end());
    return p;
  }

  // `cfg` (made by config()) with np_api beside `plugin`, its pipe at dir.file("np").
  std::string beside_np_api(std::string cfg, const std::string& plugin) const {
    const std::string plugins = "plugins = " + plugin;
    cfg.replace(cfg.find(plugins), plugins.size(), plugins + ", np_api");
    return cfg + "[plugin.np_api]\npath = " + dir.file("np") + "\n";
  }
  // Writes one line into np_api's pipe.
  void pipe_line(const std::string& line) const {
    int fd = ::open(dir.file("np").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(fd, 0) << dir.file("np");
    const std::string l = line + "\n";
    EXPECT_EQ(::write(fd, l.data(), l.size()), static_cast<ssize_t>(l.size()));
    ::close(fd);
  }
  // Waits (up to 5 s) until `series` reads `value`; returns the last value read (-1: absent).
  double wait_metric(const std::string& series, double value) const {
    double v = -1;
    for (int i = 0; i < 100; ++i) {
      v = metric_value(scrape(), series).value_or(-1);
      if (v == value) break;
      usleep(50000);
    }
    return v;
  }
  // How many times `text` is in flowd's log.
  int count(const std::string& text) const {
    const std::string log = proc->log();
    int n = 0;
    for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
    return n;
  }
  // Waits up to 5 s for `text` to be in flowd's log `n` times (a plugin's thread logs its start
  // line after its first events went out); returns how many times it is.
  int wait_count(const std::string& text, int n = 1) const {
    for (int i = 0; i < 100 && count(text) < n; ++i) usleep(50000);
    return count(text);
  }
  // Writes `cfg` and reloads flowd with it (SIGHUP); returns once the reload is logged.
  void reload(const std::string& cfg) {
    const int before = count("reloaded: ");
    dir.write("flowd.cfg", cfg);
    proc->signal(SIGHUP);
    for (int i = 0; i < 1000 && count("reloaded: ") == before; ++i) usleep(10000);
    ASSERT_EQ(count("reloaded: "), before + 1) << proc->log();
  }

  std::vector<Event> events(std::size_t expected, std::chrono::milliseconds idle = 2500ms) {
    std::vector<Event> out;
    for (const auto& d : rx->receive_many(expected, idle))
      if (auto e = parse_firefly(d)) out.push_back(*e);
    return out;
  }

  std::string scrape() const {
    std::string out;
    net->exec(net->a, "curl -s http://127.0.0.1:9977/metrics", out);
    return out;
  }

  // One `ss -tinH` line pair for the socket with local port `port` in namespace a, as key -> value.
  std::map<std::string, std::string> ss_info(int port) const {
    std::string out;
    net->exec(net->a, "ss -tinH state established '( sport = :" + std::to_string(port) + " )'",
              out);
    std::map<std::string, std::string> kv;
    std::istringstream in(out);
    for (std::string tok; in >> tok;)
      if (auto c = tok.find(':');
          c != std::string::npos && c > 0 && tok.find('[') == std::string::npos)
        kv[tok.substr(0, c)] = tok.substr(c + 1);
    return kv;
  }

  TempDir dir;
  std::unique_ptr<NetnsPair> net;
  std::unique_ptr<UdpReceiver> rx;
  std::unique_ptr<NotifySocket> notify;
  std::unique_ptr<FlowdProcess> proc;
  pid_t iperf_pid = 0;
};

}  // namespace flowd::test
