// SPDX-License-Identifier: Apache-2.0
// The collector facing hostile senders (issue 13): template memory bounded by bytes per exporter
// address and in total whatever the source ports, and metric labels that junk cannot multiply.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

using Exporter = LoopbackExporter;

void put16(std::string& s, std::uint32_t v) {
  s.push_back(static_cast<char>((v >> 8) & 0xFF));
  s.push_back(static_cast<char>(v & 0xFF));
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, v >> 16);
  put16(s, v & 0xFFFF);
}

// An IPFIX message holding one template set with one template of `fields` fields (paddingOctets,
// 4 bytes each): 24 + 4 x fields bytes on the wire.
std::string big_template(std::uint16_t id, std::uint16_t fields, std::uint32_t seq) {
  std::string body;
  put16(body, id);
  put16(body, fields);
  for (std::uint16_t i = 0; i < fields; ++i) {
    put16(body, 210);
    put16(body, 4);
  }
  std::string m;
  put16(m, 10);
  put16(m, static_cast<std::uint32_t>(16 + 4 + body.size()));
  put32(m, 1795356761);
  put32(m, seq);
  put32(m, 1);  // observation domain
  put16(m, 2);  // template set
  put16(m, static_cast<std::uint32_t>(4 + body.size()));
  return m + body;
}

// VmRSS of a process, in KiB.
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// The distinct values of `label` among the samples of metric `name` in an exposition.
std::set<std::string> label_values(const std::string& exposition, const std::string& name,
                                   const std::string& label) {
  std::set<std::string> values;
  std::istringstream in(exposition);
  std::string line;
  const std::string key = label + "=\"";
  while (std::getline(in, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    auto at = line.find(key);
    if (at == std::string::npos) continue;
    at += key.size();
    values.insert(line.substr(at, line.find('"', at) - at));
  }
  return values;
}

std::size_t series_count(const std::string& exposition, const std::string& name) {
  std::size_t n = 0;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) ++n;
  return n;
}

// 8 exporter addresses x 8 source ports x 8 templates of 16,000 fields (64 KB on the wire, about
// 250 KiB held each: 16,000 x 12-byte field specifiers and the 64 KB record), 32 MB in all. Without
// a byte bound flowd kept every one (max_templates counts per address and port): 512 x 250 KiB =
// 125 MiB; the same traffic grew main's flowd (d7b01b5) by 128,436 KiB of VmRSS, 513 templates.
// With 1 MiB per address and 4 MiB in all the templates hold at most 4 MiB (measured: +4,280 KiB
// of VmRSS over a 16 MiB baseline). The test allows 4 + 20 MiB: the bound, the allocator's free
// lists (a freed 250 KiB block is reused by the next template, not returned) and the scrapes; an
// unbounded store exceeds it five times over.
TEST(CollectorBounds, TemplateBytesAreBoundedPerExporterAddressAndInTotal) {
  Daemon d;
  const int port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(port) +
         "\ntcp_listen =\nmax_template_bytes_per_exporter = 1048576\n"
         "max_template_bytes = 4194304\n";
  d.start(cfg);
  constexpr int kAddresses = 8, kPorts = 8, kTemplates = 8;
  constexpr std::uint16_t kFields = 16000;
  std::vector<std::unique_ptr<Exporter>> exporters;
  for (int a = 0; a < kAddresses; ++a)
    for (int p = 0; p < kPorts; ++p) exporters.push_back(std::make_unique<Exporter>(a + 1));
  // A first small template, so that the receive buffers (allocated on the first read) are in the
  // baseline.
  exporters[0]->send(port, big_template(999, 4, 0));
  d.scrape_until("flowd_netflow_packets_total{version=\"10\"}", 1);
  const long baseline = rss_kib(d.proc->pid());
  ASSERT_GT(baseline, 0);
  double sent = 1;
  std::uint32_t seq = 1;
  for (int t = 0; t < kTemplates; ++t) {
    for (std::size_t i = 0; i < exporters.size(); ++i) {
      exporters[i]->send(port, big_template(static_cast<std::uint16_t>(256 + t), kFields, seq++));
      ++sent;
      // Every 8 datagrams (512 KB) are read before the next: loopback drops only what overflows
      // the receive buffer, and every template must arrive for the counts below.
      if (i % 8 == 7) d.scrape_until("flowd_netflow_packets_total{version=\"10\"}", sent, 10s);
    }
  }
  std::string m = d.scrape_until("flowd_netflow_packets_total{version=\"10\"}", sent, 10s);
  ASSERT_EQ(metric_sum(m, "flowd_netflow_packets_total{version=\"10\"}"), sent) << d.proc->log();
  const long grown = rss_kib(d.proc->pid()) - baseline;
  const double bytes = metric_value(m, "flowd_netflow_template_bytes").value_or(-1);
  EXPECT_GT(bytes, 0) << m;
  EXPECT_LE(bytes, 4 << 20) << m;
  // 4 templates of ~250 KiB fit in 1 MiB for one address and 16 in all.
  const double templates = metric_sum(m, "flowd_netflow_templates").value_or(-1);
  EXPECT_GE(templates, 12) << m;
  EXPECT_LE(templates, 16 + 1) << m;
  EXPECT_GT(metric_value(m, "flowd_netflow_templates_evicted_total{reason=\"exporter_bytes\"}")
                .value_or(0),
            0)
      << m;
  EXPECT_GT(
      metric_value(m, "flowd_netflow_templates_evicted_total{reason=\"total_bytes\"}").value_or(0),
      0)
      << m;
  // Every big template was stored, then all but those that fit evicted.
  EXPECT_EQ(metric_value(m, "flowd_netflow_templates_evicted_total{reason=\"exporter_bytes\"}")
                    .value_or(0) +
                metric_value(m, "flowd_netflow_templates_evicted_total{reason=\"total_bytes\"}")
                    .value_or(0),
            kAddresses * kPorts * kTemplates + 1 - templates)
      << m;
  EXPECT_EQ(metric_value(m, "flowd_netflow_templates_refused_total{reason=\"too_large\"}"), 0);
#ifndef FLOWD_SANITIZED_FLOWD
  // Under ASan freed memory sits in its quarantine and every byte has shadow: RSS is no measure.
  EXPECT_LE(grown, (4 + 20) * 1024) << "VmRSS grew by " << grown << " KiB";
#endif
  EXPECT_NE(d.proc->log().find("template(s) evicted to make room"), std::string::npos)
      << d.proc->log();
  std::string lint;
  EXPECT_EQ(run_shell("promtool check metrics", m, lint), 0) << lint;
  EXPECT_EQ(d.stop(), 0);
  std::cout << "VmRSS grew by " << grown << " KiB over " << baseline << " KiB; templates hold "
            << bytes << " bytes\n";
}

TEST(CollectorBounds, ATemplateLargerThanTheExporterBoundIsRefusedAndLogged) {
  Daemon d;
  const int port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(port) +
         "\ntcp_listen =\nmax_template_bytes_per_exporter = 65536\n";
  d.start(cfg);
  Exporter e(1);
  e.send(port, big_template(256, 8000, 0));  // about 128 KiB held
  std::string m = d.scrape_until("flowd_netflow_templates_refused_total{reason=\"too_large\"}", 1);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_templates_refused_total{reason=\"too_large\"}"), 1) << m;
  EXPECT_EQ(metric_sum(m, "flowd_netflow_templates"), 0);
  EXPECT_EQ(
      metric_sum(m, "flowd_netflow_decode_errors_total{reason=\"template_limit\",version=\"10\"}"),
      1)
      << m;
  EXPECT_NE(d.proc->log().find("template(s) refused, each larger than "
                               "max_template_bytes_per_exporter = 65536 bytes"),
            std::string::npos)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// Junk whose first two bytes take 1,000 values: the version label stays in its closed set (1, 5,
// 9, 10, unknown), and sFlow junk adds no series beyond its reasons.
TEST(CollectorBounds, JunkCannotMultiplyMetricSeries) {
  Daemon d;
  const int nf_port = free_udp_port(), sf_port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow, sflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
         "\ntcp_listen =\n\n[plugin.sflow]\nlisten = 127.0.0.1:" + std::to_string(sf_port) + "\n";
  d.start(cfg);
  std::vector<std::string> junk;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    std::string p;
    // 0..11 first (every version flowd decodes among them), then spread over the 16-bit range.
    put16(p, i < 12 ? i : (i * 65537u / 1000u) & 0xFFFF);
    for (int k = 0; k < 30; ++k) p.push_back(static_cast<char>((i * 31 + k * 7) & 0xFF));
    junk.push_back(p);
  }
  Exporter e(1);
  for (const auto& p : junk) e.send(nf_port, p);
  std::vector<std::string> sflow_junk;
  for (const auto& p : junk) sflow_junk.push_back(p + p);
  for (const auto& p : sflow_junk) e.send(sf_port, p);
  d.scrape_until("flowd_netflow_packets_total{version=\"unknown\"}", 1000 - 12, 10s);
  std::string m = d.scrape_until("flowd_sflow_datagrams_total", 1000, 10s);
  double packets = 0;
  for (const char* v : {"1", "5", "9", "10", "unknown"})
    packets += metric_sum(m, std::string("flowd_netflow_packets_total{version=\"") + v + "\"}")
                   .value_or(0);
  ASSERT_EQ(packets, 1000) << m;
  ASSERT_EQ(metric_sum(m, "flowd_sflow_datagrams_total"), 1000) << m;
  const auto versions = label_values(m, "flowd_netflow_decode_errors_total", "version");
  EXPECT_LE(versions.size(), 5u) << m;
  for (const auto& v : versions)
    EXPECT_TRUE(v == "1" || v == "5" || v == "9" || v == "10" || v == "unknown") << v;
  EXPECT_TRUE(versions.contains("unknown"));
  EXPECT_EQ(label_values(m, "flowd_netflow_packets_total", "version").size(), 5u);
  // sFlow: one series per reason, whatever the datagrams said.
  EXPECT_EQ(series_count(m, "flowd_sflow_decode_errors_total"),
            label_values(m, "flowd_sflow_decode_errors_total", "reason").size());
  EXPECT_LE(series_count(m, "flowd_sflow_decode_errors_total"), 16u);
  std::string lint;
  EXPECT_EQ(run_shell("promtool check metrics", m, lint), 0) << lint;
  EXPECT_EQ(lint.find("problem"), std::string::npos) << lint;
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
