// SPDX-License-Identifier: Apache-2.0
// fixtures/observed/random-labels-ipfix.pcap (2,400 records of untagged IPv6 traffic whose flow
// labels are random, as Linux picks them) replayed to the daemon's netflow plugin: only the 3
// records whose random label happens to spell a registered pair are tags (the floor the README
// explains), none with label_networks elsewhere, every label counted by result, and the traffic
// measured per experiment. These runs configure no udp_firefly (its traffic to observed flows is
// tested in a namespace of the test's own, observed_netns_test.cpp): on the host, nothing may be
// sent towards 2001:db8::/32.
#include <gtest/gtest.h>

#include <unistd.h>

#include <sstream>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

constexpr double kRecords = 2400, kOctetsPerRecord = 150000, kPacketsPerRecord = 100;

class ObservedLabels : public ::testing::Test {
 protected:
  std::string start(const std::string& netflow_extra, bool wait_for_records = true) {
    const int port = free_udp_port();
    std::string cfg = d.config_with_plugins("netflow");
    cfg.replace(cfg.find("backends = udp_firefly, prometheus"), 34, "backends = prometheus");
    cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(port) + "\ntcp_listen =\n" +
           netflow_extra;
    d.start(cfg);
    send_udp_payloads(port,
                      capture_payloads(fixtures_dir() + "/observed/random-labels-ipfix.pcap", 17));
    if (!wait_for_records)
      return d.scrape_until("flowd_netflow_refused_total{transport=\"udp\"}", 101);
    d.scrape_until("flowd_netflow_records_total{version=\"10\"}", kRecords);
    // Labels and volume are counted after the records: wait until every record's bytes are in.
    std::string m;
    for (int i = 0; i < 500; ++i) {
      m = d.scrape();
      double bytes = 0;
      std::istringstream lines(m);
      for (std::string line; std::getline(lines, line);)
        if (line.starts_with("flowd_observed_bytes_total{"))
          bytes += std::stod(line.substr(line.rfind(' ') + 1));
      if (bytes >= kRecords * kOctetsPerRecord) break;
      usleep(10000);
    }
    return m;
  }
  double labels(const std::string& m, const char* result) {
    return metric_value(m, std::string("flowd_observed_labels_total{result=\"") + result + "\"}")
        .value_or(-1);
  }
  Daemon d;
};

TEST_F(ObservedLabels, OnlyLabelsThatSpellARegisteredPairAreTags) {
  std::string m = start("");
  ASSERT_EQ(metric_sum(m, "flowd_netflow_records_total{version=\"10\"}"), kRecords)
      << d.proc->log();
  m = d.scrape_until(
      "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}", 3);
  // The generator's seed gives exactly three such labels: (1, 4), (1, 3) and (5, 13).
  EXPECT_EQ(labels(m, "tag"), 3);
  EXPECT_EQ(labels(m, "unregistered") + labels(m, "none"), kRecords - 3);
  EXPECT_EQ(labels(m, "outside"), 0);
  EXPECT_EQ(labels(m, "unstable"), 0);
  EXPECT_EQ(
      metric_value(
          m, "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}"),
      3);
  // Volume: the untagged series holds all but the three, and nothing is lost.
  EXPECT_EQ(
      metric_value(
          m, "flowd_observed_bytes_total{activity=\"none\",experiment=\"none\",source=\"ipfix\"}"),
      (kRecords - 3) * kOctetsPerRecord);
  EXPECT_EQ(
      metric_value(
          m,
          "flowd_observed_packets_total{activity=\"none\",experiment=\"none\",source=\"ipfix\"}"),
      (kRecords - 3) * kPacketsPerRecord);
  double tagged = 0;
  std::istringstream lines(m);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("flowd_observed_bytes_total{") &&
        line.find("experiment=\"none\"") == std::string::npos)
      tagged += std::stod(line.substr(line.rfind(' ') + 1));
  EXPECT_EQ(tagged, 3 * kOctetsPerRecord) << m;
  EXPECT_EQ(d.stop(), 0);
}

TEST_F(ObservedLabels, LabelNetworksTheFlowsDoNotTouchLeaveNoTag) {
  std::string m = start("label_networks = fd00:ffff::/32, 198.18.0.0/15\n");
  ASSERT_EQ(metric_sum(m, "flowd_netflow_records_total{version=\"10\"}"), kRecords)
      << d.proc->log();
  EXPECT_EQ(labels(m, "tag"), 0);
  EXPECT_EQ(labels(m, "outside"), 3);
  EXPECT_EQ(
      metric_value(
          m, "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}")
          .value_or(0),
      0);
  EXPECT_EQ(
      metric_value(
          m, "flowd_observed_bytes_total{activity=\"none\",experiment=\"none\",source=\"ipfix\"}"),
      kRecords * kOctetsPerRecord);
  EXPECT_EQ(d.stop(), 0);
}

TEST_F(ObservedLabels, ExportersOutsideAllowAreRefused) {
  std::string m = start("allow = 198.18.0.0/15\n", false);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_refused_total{transport=\"udp\"}"), 101);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_records_total{version=\"10\"}").value_or(0), 0);
  EXPECT_EQ(labels(m, "tag"), 0);
  EXPECT_NE(d.proc->log().find("refused: not in allow"), std::string::npos) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

TEST_F(ObservedLabels, AReloadEndsTheFlowsAndKeepsTheDump) {
  std::string m = start("dump = " + d.dir.file("dump.json") + "\n");
  m = d.scrape_until(
      "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}", 3);
  ASSERT_EQ(
      metric_value(
          m, "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}"),
      3);
  // A changed netflow section replaces the plugin: its three started flows end, and the dump it
  // wrote stays (appended to, not truncated).
  std::string cfg = read_file(d.config_path);
  cfg += "idle_timeout = 30\n";
  d.dir.write("flowd.cfg", cfg);
  d.proc->signal(SIGHUP);
  m = d.scrape_until(
      "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"end\"}", 3);
  EXPECT_EQ(metric_value(
                m, "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"end\"}"),
            3)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
  const std::string dump = read_file(d.dir.file("dump.json"));
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), kRecords);
}

}  // namespace
}  // namespace flowd::test
