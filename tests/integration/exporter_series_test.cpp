// SPDX-License-Identifier: Apache-2.0
// Per-exporter series (issue 16 §2) in the real daemon: three exporters (UDP sockets bound to
// 127.0.0.2, .3 and .4) replay real captures with max_exporter_series = 2; the first two get
// series of their own, the third is counted under exporter="other" and in the folded counter, the
// sums equal the totals, the scrape passes `promtool check metrics`, and a reload keeps it so.
#include <gtest/gtest.h>

#include <set>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

std::uint32_t be32(const std::string& s, std::size_t at) {
  return std::uint32_t{static_cast<std::uint8_t>(s[at])} << 24 |
         std::uint32_t{static_cast<std::uint8_t>(s[at + 1])} << 16 |
         std::uint32_t{static_cast<std::uint8_t>(s[at + 2])} << 8 |
         std::uint32_t{static_cast<std::uint8_t>(s[at + 3])};
}

// The values of `label` among the samples of `name`.
std::set<std::string> values_of(const std::string& m, const std::string& name,
                                const std::string& label) {
  std::set<std::string> out;
  for (const auto& s : metric_samples(m, name))
    if (auto it = s.find(label); it != s.end()) out.insert(it->second);
  return out;
}

void expect_promtool_clean(const std::string& m) {
  std::string lint;
  EXPECT_EQ(run_shell("promtool check metrics", m, lint), 0) << lint;
  EXPECT_EQ(lint.find("problem"), std::string::npos) << lint;
}

// Sends `payloads` from `from` and waits until `total` (a selector) reaches `want`.
std::string replay(const Daemon& d, const LoopbackExporter& from, int port,
                   const std::vector<std::string>& payloads, const std::string& total,
                   double want) {
  for (const auto& p : payloads) from.send(port, p);
  return d.scrape_until(total, want, 10s);
}

TEST(ExporterSeries, ThreeIpfixExportersWithACapOfTwo) {
  const auto payloads = capture_payloads(fixtures_dir() + "/netflow/softflowd-ipfix.pcap", 17);
  ASSERT_FALSE(payloads.empty());
  const std::string domain = std::to_string(be32(payloads[0], 12));
  const double n = static_cast<double>(payloads.size());
  Daemon d;
  const int port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  // Two workers: the series are shared, whichever worker the kernel hands an exporter to.
  const std::string section = "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(port) +
                              "\ntcp_listen =\nworkers = 2\nmax_exporter_series = 2\n";
  d.start(cfg + section + "idle_timeout = 4\n");
  const LoopbackExporter e2(2), e3(3), e4(4);
  const std::string packets = "flowd_netflow_packets_total";
  replay(d, e2, port, payloads, packets, n);
  replay(d, e3, port, payloads, packets, 2 * n);
  std::string m = replay(d, e4, port, payloads, packets, 3 * n);
  ASSERT_EQ(metric_sum(m, packets), 3 * n) << m << d.proc->log();

  EXPECT_EQ(values_of(m, packets, "exporter"),
            (std::set<std::string>{"127.0.0.2", "127.0.0.3", "other"}));
  EXPECT_EQ(values_of(m, packets, "observation_domain"), (std::set<std::string>{domain, ""}));
  for (const std::string e : {"127.0.0.2", "127.0.0.3", "other"}) {
    const std::string sel = "{exporter=\"" + e + "\",version=\"10\"}";
    EXPECT_EQ(metric_sum(m, packets + sel), n) << e << "\n" << m;
  }
  EXPECT_EQ(
      metric_sum(m, "flowd_netflow_packets_total{exporter=\"127.0.0.2\",observation_domain=\"" +
                        domain + "\"}"),
      n);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_exporters_folded_total"), n);
  // Records: the three exporters sent the same; the sum is the total of what was decoded.
  const double records = metric_sum(m, "flowd_netflow_records_total").value_or(0);
  EXPECT_GT(records, 0);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_records_total{exporter=\"other\"}").value_or(0) * 3,
            records);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_records_total{exporter=\"127.0.0.2\"}").value_or(0) * 3,
            records);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_sequence_lost_total").value_or(-1), 0);
  // The template gauge: each named exporter its own, the third under other (each worker publishes
  // its part as its templates change; the workers may not have caught up at the first scrape).
  const std::string templates = "flowd_netflow_templates{exporter=\"other\"}";
  auto templates_of = [&](const std::string& e) {
    return metric_sum(m, "flowd_netflow_templates{exporter=\"" + e + "\"}").value_or(0);
  };
  for (int i = 0; i < 1000; ++i) {
    m = d.scrape();
    const double o = templates_of("other");
    if (o > 0 && templates_of("127.0.0.2") == o && templates_of("127.0.0.3") == o) break;
    std::this_thread::sleep_for(10ms);
  }
  const double t = metric_sum(m, templates).value_or(0);
  EXPECT_GT(t, 0) << m;
  EXPECT_EQ(metric_sum(m, "flowd_netflow_templates{exporter=\"127.0.0.2\",observation_domain=\"" +
                              domain + "\"}"),
            t)
      << m;
  EXPECT_EQ(metric_sum(m, "flowd_netflow_templates{exporter=\"127.0.0.3\"}"), t) << m;
  EXPECT_EQ(metric_sum(m, "flowd_netflow_templates"), 3 * t) << m;
  expect_promtool_clean(m);
  EXPECT_NE(d.proc->log().find(
                "exporter 127.0.0.4 domain " + domain +
                " is counted under exporter=\"other\": max_exporter_series is 2 and 2 exporters"),
            std::string::npos)
      << d.proc->log();

  // A reload makes a new plugin: 127.0.0.4 comes first and still finds the cap reached; the
  // named exporters' series go on.
  d.dir.write("flowd.cfg", cfg + section + "idle_timeout = 5\n");
  d.proc->signal(SIGHUP);
  for (int i = 0; i < 500 && d.proc->log().find("reloaded:") == std::string::npos; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_NE(d.proc->log().find("reloaded:"), std::string::npos) << d.proc->log();
  replay(d, e4, port, payloads, packets, 4 * n);
  m = replay(d, e2, port, payloads, packets, 5 * n);
  EXPECT_EQ(metric_sum(m, packets + "{exporter=\"other\"}"), 2 * n) << m;
  EXPECT_EQ(metric_sum(m, packets + "{exporter=\"127.0.0.2\"}"), 2 * n) << m;
  EXPECT_EQ(metric_sum(m, packets + "{exporter=\"127.0.0.3\"}"), n) << m;
  EXPECT_EQ(values_of(m, packets, "exporter").size(), 3u) << m;
  EXPECT_EQ(metric_sum(m, "flowd_netflow_exporters_folded_total"), 2 * n);
  expect_promtool_clean(m);
  EXPECT_EQ(d.stop(), 0);
}

TEST(ExporterSeries, ThreeSflowAgentsWithACapOfTwo) {
  const auto capture = capture_payloads(
      std::string(FLOWD_SOURCE_DIR) + "/tests/fixtures/sflow/pmacctd-sfprobe-rate4.pcap", 17);
  ASSERT_FALSE(capture.empty());
  ASSERT_EQ(be32(capture[0], 4), 1u) << "an IPv4 agent address";
  // Each agent sends the capture as its own: its address in the header, from its own socket.
  auto as_agent = [&](int host) {
    std::vector<std::string> out = capture;
    for (auto& p : out) p.replace(8, 4, std::string{127, 0, 0, static_cast<char>(host)});
    return out;
  };
  const std::string sub_agent = std::to_string(be32(capture[0], 12));
  const double n = static_cast<double>(capture.size());
  Daemon d;
  const int port = free_udp_port();
  std::string cfg = d.config_with_plugins("sflow");
  cfg.replace(cfg.find("backends = udp_firefly, prometheus"), 34, "backends = prometheus");
  cfg += "\n[plugin.sflow]\nlisten = 127.0.0.1:" + std::to_string(port) +
         "\nmax_exporter_series = 2\n";
  d.start(cfg);
  const LoopbackExporter e2(2), e3(3), e4(4);
  const std::string datagrams = "flowd_sflow_datagrams_total";
  replay(d, e2, port, as_agent(2), datagrams, n);
  replay(d, e3, port, as_agent(3), datagrams, 2 * n);
  std::string m = replay(d, e4, port, as_agent(4), datagrams, 3 * n);
  ASSERT_EQ(metric_sum(m, datagrams), 3 * n) << m << d.proc->log();
  EXPECT_EQ(values_of(m, datagrams, "agent"),
            (std::set<std::string>{"127.0.0.2", "127.0.0.3", "other"}));
  for (const std::string a : {"127.0.0.2", "127.0.0.3", "other"})
    EXPECT_EQ(metric_sum(m, datagrams + "{agent=\"" + a + "\"}"), n) << a << "\n" << m;
  EXPECT_EQ(metric_sum(m, datagrams + "{agent=\"127.0.0.3\",sub_agent=\"" + sub_agent + "\"}"), n);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_agents_folded_total"), n);
  const double samples = metric_sum(m, "flowd_sflow_samples_total").value_or(0);
  EXPECT_EQ(samples, 3 * 389) << m;
  EXPECT_EQ(metric_sum(m, "flowd_sflow_samples_total{agent=\"other\"}"), 389);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_samples_total{agent=\"127.0.0.2\"}"), 389);
  expect_promtool_clean(m);
  EXPECT_NE(d.proc->log().find("sFlow agent 127.0.0.4 sub-agent " + sub_agent +
                               " is counted under agent=\"other\""),
            std::string::npos)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
