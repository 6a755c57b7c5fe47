// SPDX-License-Identifier: Apache-2.0
// docs/grafana/flowd.json: every PromQL expression is valid (promtool check rules), and every
// metric it names is one flowd exports, read from a real scrape of a flowd with every plugin and
// backend on (privileged: the ebpf backend and the scanners run in a network namespace of the
// test's own).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "netns_scope.hpp"

namespace flowd::test {
namespace {

const std::string kDashboard = std::string(FLOWD_SOURCE_DIR) + "/docs/grafana/flowd.json";

// Every string under a key named `key`, anywhere in `j`.
void strings_at(const nlohmann::json& j, const std::string& key, std::vector<std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == key && it.value().is_string()) out.push_back(it.value().get<std::string>());
      strings_at(it.value(), key, out);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) strings_at(e, key, out);
  }
}

nlohmann::json dashboard() {
  std::ifstream in(kDashboard);
  return nlohmann::json::parse(in);
}

// The panels' queries, with Grafana's variables replaced by what they stand for at query time.
std::vector<std::string> expressions() {
  std::vector<std::string> exprs;
  strings_at(dashboard(), "expr", exprs);
  for (auto& e : exprs) {
    e = std::regex_replace(e, std::regex(R"(\$__rate_interval)"), "5m");
    e = std::regex_replace(e, std::regex(R"(\$instance)"), ".*");
  }
  return exprs;
}

// Metric names in the panels' queries and the variables' queries (label_values(...)).
std::set<std::string> metric_names() {
  std::vector<std::string> texts;
  auto d = dashboard();
  strings_at(d, "expr", texts);
  strings_at(d, "definition", texts);
  std::set<std::string> names;
  std::regex name(R"(\bflowd_[a-z0-9_]+)");
  for (const auto& t : texts)
    for (std::sregex_iterator it(t.begin(), t.end(), name), end; it != end; ++it)
      names.insert(it->str());
  return names;
}

TEST(GrafanaDashboard, EveryExpressionIsValidPromQL) {
  auto exprs = expressions();
  ASSERT_GE(exprs.size(), 20u) << "the dashboard lost its panels: " << kDashboard;
  // promtool checks expressions as recording rules: one rule per panel query.
  std::string rules = "groups:\n- name: flowd_dashboard\n  rules:\n";
  for (std::size_t i = 0; i < exprs.size(); ++i) {
    std::string quoted = exprs[i];
    quoted = std::regex_replace(quoted, std::regex("'"), "''");
    rules += "  - record: flowd_dashboard:q" + std::to_string(i) + "\n    expr: '" + quoted + "'\n";
  }
  TempDir dir;
  dir.write("rules.yml", rules);
  std::string out;
  EXPECT_EQ(run_shell("promtool check rules " + dir.file("rules.yml"), "", out), 0) << out << rules;
  EXPECT_NE(out.find("SUCCESS: " + std::to_string(exprs.size()) + " rules found"),
            std::string::npos)
      << out;
}

TEST(GrafanaDashboard, CoversWhatTheIssueAsksFor) {
  std::vector<std::string> titles;
  strings_at(dashboard(), "title", titles);
  std::string all;
  for (const auto& t : titles) all += t + "\n";
  for (const char* want :
       {"Flow events per plugin", "Active flows", "Tagged traffic per experiment and activity",
        "Fireflies sent", "Fireflies failed", "Queue depth", "Events dropped", "Marker packets",
        "Collector rates", "Decode errors", "Sequence loss"})
    EXPECT_NE(all.find(want), std::string::npos) << want << " missing in\n" << all;
}

TEST(GrafanaDashboard, EveryMetricItNamesIsOneFlowdExports) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for a network namespace and BPF";
  NetnsPair net;
  TempDir dir;
  const std::string cfg =
      "[flowd]\nplugins = np_api, netflow, sflow, firefly, netlink, netstat, iperf\n"
      "backends = udp_firefly, prometheus, ebpf\nwork_dir = " +
      dir.file("cache") + "\n[plugin.np_api]\npath = " + dir.file("np") +
      "\n[plugin.netflow]\nlisten = 127.0.0.1:2055\ntcp_listen = 127.0.0.1:4739\n"
      "[plugin.sflow]\nlisten = 127.0.0.1:6343\n"
      "[plugin.firefly]\nhost = 127.0.0.1\n"
      "[plugin.netlink]\nexperiment = atlas\nactivity = Debug\n"
      "[plugin.netstat]\nexperiment = atlas\nactivity = Debug\n"
      "[backend.ebpf]\ninterfaces = " +
      net.veth_a + "\npin_path =\n[backend.prometheus]\nlisten = 127.0.0.1:9977\n";
  dir.write("flowd.cfg", cfg);
  NotifySocket notify(dir.file("notify"));
  FlowdProcess flowd({"-c", dir.file("flowd.cfg")}, dir.file("flowd.log"), notify.path(), {},
                     {"/usr/sbin/ip", "netns", "exec", net.a});
  ASSERT_TRUE(notify.wait_for("READY=1")) << flowd.log();
  // One flow through the pipe, so that the families that have series only once something
  // happened (per state, per destination) have one.
  write_pipe(dir.file("np"), "start tcp " + net.addr_a + " 40000 " + net.addr_b + " 5201 2 9\n");
  // And a real export (records: observed volume) and a truncated one (a decode error), sent
  // inside the namespace.
  {
    NetnsScope in_a(net.a);
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_storage to;
    socklen_t len = make_sockaddr("127.0.0.1", 2055, to);
    auto payloads = capture_payloads(fixtures_dir() + "/netflow/softflowd-v5.pcap", 17);
    ASSERT_FALSE(payloads.empty());
    payloads.push_back(payloads.front().substr(0, 30));  // a v5 header cut short
    for (const auto& p : payloads)
      ::sendto(fd, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&to), len);
    // An sFlow v5 datagram cut short: the sFlow decode errors (per agent) get their series.
    len = make_sockaddr("127.0.0.1", 6343, to);
    const std::string short_sflow("\0\0\0\5\0\0\0\1", 8);
    ::sendto(fd, short_sflow.data(), short_sflow.size(), 0, reinterpret_cast<sockaddr*>(&to), len);
    ::close(fd);
  }
  std::string scrape;
  std::set<std::string> exported;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(net.exec(net.a, "curl -s http://127.0.0.1:9977/metrics", scrape), 0) << scrape;
    exported.clear();
    std::istringstream in(scrape);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("# TYPE ", 0) == 0) exported.insert(line.substr(7, line.find(' ', 7) - 7));
    if (scrape.find("flowd_fireflies_sent_total{destination=\"flow\"} 1") != std::string::npos &&
        exported.contains("flowd_netflow_decode_errors_total") &&
        exported.contains("flowd_sflow_decode_errors_total") &&
        exported.contains("flowd_observed_bytes_total"))
      break;
    usleep(50000);
  }
  std::string missing;
  for (const auto& name : metric_names())
    if (!exported.contains(name)) missing += name + " ";
  EXPECT_EQ(missing, "") << "named by " << kDashboard << " but not exported:\n" << scrape;
  flowd.signal(SIGTERM);
  EXPECT_EQ(flowd.wait(), 0) << flowd.log();
}

}  // namespace
}  // namespace flowd::test
