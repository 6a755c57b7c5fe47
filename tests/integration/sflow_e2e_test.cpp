// SPDX-License-Identifier: Apache-2.0
// The sflow plugin end to end: pmacctd's sfprobe export of the fixtures' source traffic (stored in
// tests/fixtures/sflow/, rate 4) replayed to the real daemon; samples, labels and traffic volume
// (frame length x sampling rate) in the metrics; malformed datagrams counted by reason; agents
// outside `allow` refused.
#include <gtest/gtest.h>

#include <sstream>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

const std::string kCapture =
    std::string(FLOWD_SOURCE_DIR) + "/tests/fixtures/sflow/pmacctd-sfprobe-rate4.pcap";

class SflowEndToEnd : public ::testing::Test {
 protected:
  void start(const std::string& extra) {
    port = free_udp_port();
    std::string cfg = d.config_with_plugins("sflow");
    // Observed flows are never sent anywhere but a collector; none is configured, so no firefly at
    // all.
    cfg.replace(cfg.find("backends = udp_firefly, prometheus"), 34, "backends = prometheus");
    cfg += "\n[plugin.sflow]\nlisten = 127.0.0.1:" + std::to_string(port) + "\n" + extra;
    d.start(cfg);
  }
  double sum(const std::string& m, const std::string& prefix, const std::string& must_have = "") {
    double total = 0;
    std::istringstream lines(m);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with(prefix) && line.find(must_have) != std::string::npos)
        total += std::stod(line.substr(line.rfind(' ') + 1));
    return total;
  }
  Daemon d;
  int port = 0;
};

TEST_F(SflowEndToEnd, SfprobeSamplesBecomeLabelsAndVolume) {
  start("dump = " + d.dir.file("samples.json") + "\n");
  const auto datagrams = capture_payloads(kCapture, 17);
  ASSERT_EQ(datagrams.size(), 60u);
  send_udp_payloads(port, datagrams);
  d.scrape_until("flowd_sflow_samples_total", 389);
  // The label and volume series are updated after the sample counters: wait for the last of them.
  std::string m = d.scrape_until(
      "flowd_observed_packets_total{activity=\"none\",experiment=\"none\",source=\"sflow\"}",
      389 * 4);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_datagrams_total"), 60) << d.proc->log();
  EXPECT_EQ(metric_sum(m, "flowd_sflow_samples_total"), 389);
  EXPECT_EQ(metric_value(m, "flowd_sflow_extended_records_total"), 389);
  // The collectors' series lint clean too (a name with "counter" in it did not).
  std::string lint;
  EXPECT_EQ(run_shell("promtool check metrics", m, lint), 0) << lint;
  EXPECT_EQ(lint.find("problem"), std::string::npos) << lint;
  // 74 IPv6 samples carry a label; the kernel's random labels spell no registered pair here.
  EXPECT_EQ(sum(m, "flowd_observed_labels_total{"), 74);
  EXPECT_EQ(metric_value(m, "flowd_observed_labels_total{result=\"tag\"}"), 0);
  EXPECT_GE(metric_value(m, "flowd_observed_labels_total{result=\"none\"}"), 2);
  // Frame lengths x sampling rate, all untagged (the figures flowd decode gives for the capture).
  EXPECT_EQ(sum(m, "flowd_observed_bytes_total{", "source=\"sflow\""), 1485568);
  EXPECT_EQ(sum(m, "flowd_observed_packets_total{", "source=\"sflow\""), 389 * 4);
  EXPECT_EQ(
      metric_value(
          m, "flowd_observed_bytes_total{activity=\"none\",experiment=\"none\",source=\"sflow\"}"),
      1485568);
  EXPECT_EQ(d.stop(), 0);
  const std::string dump = read_file(d.dir.file("samples.json"));
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 389);
  EXPECT_NE(dump.find("\"protocol\":\"sflow\""), std::string::npos);
}

TEST_F(SflowEndToEnd, MalformedDatagramsAreCountedAndTheDaemonStaysUp) {
  start("");
  auto good = capture_payloads(kCapture, 17).front();
  std::vector<std::string> bad = {
      std::string("\0\0\0\5", 4),                   // too short
      std::string("\0\0\0\6", 4) + good.substr(4),  // version 6
      good.substr(0, good.size() / 2),              // a sample cut in half
  };
  std::string lying = good;
  lying[27] = 100;  // the number of samples (28th byte of an IPv4-agent header) lies
  bad.push_back(lying);
  send_udp_payloads(port, bad);
  std::string m = d.scrape_until("flowd_sflow_datagrams_total", 4);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_datagrams_total"), 4);
  EXPECT_GE(sum(m, "flowd_sflow_decode_errors_total{"), 4) << m;
  EXPECT_EQ(metric_sum(m, "flowd_sflow_decode_errors_total{reason=\"bad_version\"}"), 1);
  EXPECT_NE(d.proc->log().find("sFlow datagram from 127.0.0.1"), std::string::npos)
      << d.proc->log();
  // Still serving.
  send_udp_payloads(port, {good});
  m = d.scrape_until("flowd_sflow_datagrams_total", 5);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_datagrams_total"), 5);
  EXPECT_EQ(d.stop(), 0);
}

TEST_F(SflowEndToEnd, AgentsOutsideAllowAreRefused) {
  start("allow = 198.18.0.0/15\n");
  send_udp_payloads(port, capture_payloads(kCapture, 17));
  std::string m = d.scrape_until("flowd_sflow_refused_total{transport=\"udp\"}", 60);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_refused_total{transport=\"udp\"}"), 60);
  EXPECT_EQ(metric_sum(m, "flowd_sflow_samples_total").value_or(0), 0);
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
