// SPDX-License-Identifier: Apache-2.0
// privileged: the connection scanners (netlink, netstat, iperf) on real TCP connections in a
// network namespace the test creates; events observed as fireflies, TCP details compared with `ss
// -tin`, the per-flow flow_tcp_* series scraped and checked with promtool.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "firefly_schema.hpp"
#include "scanner_netns_fixture.hpp"

namespace flowd::test {
namespace {

const std::string kNetlinkKeys =
    "experiment = atlas\nactivity = Debug\nrules = 1094 cms Cache\n"
    "internal_networks = 198.19.0.0/16, fd00:f10e::/64\nignore_private = no\ninterval = 1\n";

TEST_F(ScannerNetns, NetlinkStartEndFilteringAdoptionAndTcpDetails) {
  Fds fds;
  int c0_port = 0, c1_port = 0, c2_port = 0, c3_port = 0, c4_port = 0;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("0.0.0.0", 5000)), 0);
    ASSERT_GE(fds.add(tcp_listen("::", 5000)), 0);
  }
  int rule_listener;
  {
    NetnsScope in_a(net->a);
    rule_listener = fds.add(tcp_listen("0.0.0.0", 1094));
    ASSERT_GE(rule_listener, 0);
  }
  int c0;
  {
    NetnsScope in_a(net->a);
    c0 = fds.add(tcp_connect(net->addr_b, 5000, &c0_port));  // older than flowd: adopted silently
    ASSERT_GE(c0, 0);
  }
  start_flowd(config("netlink", kNetlinkKeys));

  int c1, c2, peer_of_rule;
  {
    NetnsScope in_a(net->a);
    c1 = fds.add(tcp_connect("198.18.0.2", 5000, &c1_port));
    c2 = fds.add(tcp_connect(net->addr_b, 5000, &c2_port));
    fds.add(tcp_connect("198.19.0.2", 5000, &c3_port));    // internal network
    fds.add(tcp_connect("fd00:f10e::2", 5000, &c4_port));  // internal network
    ASSERT_GE(c1, 0);
    ASSERT_GE(c2, 0);
  }
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_connect("198.18.0.1", 1094)), 0);
  }
  peer_of_rule = fds.add(::accept(rule_listener, nullptr, nullptr));
  ASSERT_GE(peer_of_rule, 0);
  const char data[1000] = {};
  ASSERT_EQ(::send(c1, data, sizeof data, 0), static_cast<ssize_t>(sizeof data));

  auto started = events(3);
  std::map<int, Event> by_port;
  for (const auto& e : started) {
    EXPECT_EQ(e.state, "start");
    by_port[e.src_port] = e;
  }
  ASSERT_EQ(started.size(), 3u) << proc->log();
  ASSERT_TRUE(by_port.contains(c1_port));
  ASSERT_TRUE(by_port.contains(c2_port));
  ASSERT_TRUE(by_port.contains(1094));
  EXPECT_EQ(by_port[c1_port].dst, "198.18.0.2");
  EXPECT_EQ(by_port[c1_port].src, "198.18.0.1");
  EXPECT_EQ(by_port[c1_port].dst_port, 5000);
  EXPECT_EQ(by_port[c1_port].exp, 2);
  EXPECT_EQ(by_port[c1_port].act, 9);
  EXPECT_EQ(by_port[c2_port].dst, net->addr_b);
  EXPECT_EQ(by_port[1094].exp, 3) << "the local-port rule tags the accepted connection cms/Cache";
  EXPECT_EQ(by_port[1094].act, 3);
  EXPECT_FALSE(by_port.contains(c0_port) || by_port.contains(c3_port) || by_port.contains(c4_port));

  // tcp_info in the per-flow series equals what ss reads for the same socket.
  std::string series_labels =
      "{src=\"198.18.0.1\",dst=\"198.18.0.2\",exp=\"atlas\",act=\"Debug\",flow=\"" +
      std::to_string(c1_port) + ":5000\"}";
  std::string m = scrape();
  auto ss = ss_info(c1_port);
  ASSERT_TRUE(ss.contains("mss")) << "ss output unexpected";
  EXPECT_EQ(metric_value(m, "flow_tcp_mss" + series_labels), std::stod(ss["mss"])) << m;
  EXPECT_EQ(metric_value(m, "flow_tcp_cwnd" + series_labels), std::stod(ss["cwnd"]));
  EXPECT_EQ(metric_value(m, "flow_tcp_bytes_acked_total" + series_labels),
            std::stod(ss["bytes_acked"]));
  EXPECT_EQ(metric_value(m, "flow_tcp_bytes_sent_total" + series_labels),
            std::stod(ss["bytes_sent"]));
  EXPECT_EQ(metric_value(m, "flow_tcp_segs_out_total" + series_labels), std::stod(ss["segs_out"]));
  EXPECT_EQ(metric_value(m, "flow_tcp_rto" + series_labels), std::stod(ss["rto"]));
  EXPECT_EQ(metric_value(m, "flow_tcp_bytes_acked_total" + series_labels), sizeof data + 1);
  auto rtt = metric_value(m, "flow_tcp_rtt" + series_labels);
  ASSERT_TRUE(rtt);
  EXPECT_NEAR(*rtt, std::stod(ss["rtt"].substr(0, ss["rtt"].find('/'))), 0.0015);
  EXPECT_NE(m.find("flow_tcp_ca_info{src=\"198.18.0.1\""), std::string::npos);
  EXPECT_NE(m.find("flow=\"1094:"), std::string::npos) << "the accepted connection has series too";
  std::string out;
  EXPECT_EQ(run_shell("promtool check metrics", m, out), 0) << out;

  // Ends: a closed connection (closing state, then gone); the adopted one closes silently.
  ::shutdown(c1, SHUT_RDWR);
  ::shutdown(c0, SHUT_RDWR);
  auto ended = events(1);
  ASSERT_EQ(ended.size(), 1u) << proc->log();
  EXPECT_EQ(ended[0].state, "end");
  EXPECT_EQ(ended[0].src_port, c1_port);
  EXPECT_EQ(ended[0].exp, 2);
  m = scrape();
  EXPECT_EQ(m.find("flow=\"" + std::to_string(c1_port) + ":5000\""), std::string::npos)
      << "series removed at end";
  EXPECT_NE(m.find("flow=\"" + std::to_string(c2_port) + ":5000\""), std::string::npos);

  ::shutdown(c2, SHUT_RDWR);
  ::shutdown(peer_of_rule, SHUT_RDWR);
  ended = events(2);
  ASSERT_EQ(ended.size(), 2u) << proc->log();
  std::set<int> ports{ended[0].src_port, ended[1].src_port};
  EXPECT_EQ(ports, (std::set<int>{c2_port, 1094}));
  EXPECT_EQ(scrape().find("\nflow_tcp_"), std::string::npos) << "no flow left, no per-flow series";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

TEST_F(ScannerNetns, FirefliesCarryNetlinkAndOngoingUpdates) {
  Fds fds;
  int server;
  {
    NetnsScope in_b(net->b);
    server = fds.add(tcp_listen("::", 5000));
    ASSERT_GE(server, 0);
  }
  std::string cfg =
      config("netlink", "experiment = 2\nactivity = 9\nignore_private = no\ninterval = 1\n");
  cfg.replace(cfg.find("collector = 127.0.0.1\n"), 22,
              "collector = 127.0.0.1\nnetlink = yes\nongoing_interval = 1\n");
  start_flowd(cfg);
  int port = 0, c;
  {
    NetnsScope in_a(net->a);
    c = fds.add(tcp_connect(net->addr_b, 5000, &port));
    ASSERT_GE(c, 0);
  }
  int peer = fds.add(::accept(server, nullptr, nullptr));
  ASSERT_GE(peer, 0);
  std::vector<nlohmann::json> got;
  std::vector<std::string> datagrams;  // every firefly of this flow, for the schemas
  auto collect = [&](std::size_t n) {
    for (const auto& d : rx->receive_many(n, 2500ms)) {
      auto j = nlohmann::json::parse(d.substr(d.find('{')), nullptr, false);
      if (!j.is_discarded() && j["flow-id"]["src-port"] == port) {
        got.push_back(j);
        datagrams.push_back(d);
      }
    }
  };
  collect(1);
  ASSERT_FALSE(got.empty()) << proc->log();
  auto start = got[0];
  EXPECT_EQ(start["flow-lifecycle"]["state"], "start");
  ASSERT_TRUE(start.contains("netlink")) << start.dump();
  auto ss = ss_info(port);
  EXPECT_EQ(start["netlink"]["src_port"], port);
  EXPECT_EQ(start["netlink"]["dst"], net->addr_b);
  EXPECT_EQ(start["netlink"]["tcp_info"]["state"], "established");
  EXPECT_EQ(start["netlink"]["tcp_info"]["snd_mss"], std::stoi(ss["mss"]));
  EXPECT_EQ(start["netlink"]["tcp_info"]["snd_cwnd"], std::stoi(ss["cwnd"]));
  EXPECT_FALSE(start["netlink"]["cong_algo"].get<std::string>().empty());
  EXPECT_TRUE(start.contains("usage")) << start.dump();

  // Data moves: ongoing fireflies carry the new byte counts, at about one per second.
  const char data[5000] = {};
  ASSERT_EQ(::send(c, data, sizeof data, 0), static_cast<ssize_t>(sizeof data));
  char sink[sizeof data];
  ASSERT_EQ(::recv(peer, sink, sizeof sink, MSG_WAITALL), static_cast<ssize_t>(sizeof sink));
  got.clear();
  collect(2);
  ASSERT_GE(got.size(), 2u) << proc->log();
  for (const auto& j : got) EXPECT_EQ(j["flow-lifecycle"]["state"], "ongoing");
  EXPECT_EQ(got.back()["netlink"]["tcp_info"]["bytes_acked"], sizeof data + 1);
  EXPECT_EQ(got.back()["flow-lifecycle"]["start-time"], start["flow-lifecycle"]["start-time"]);

  ::close(c);
  fds.fds.erase(std::find(fds.fds.begin(), fds.fds.end(), c));
  got.clear();
  for (int i = 0; i < 5 && (got.empty() || got.back()["flow-lifecycle"]["state"] != "end"); ++i)
    collect(1);
  ASSERT_FALSE(got.empty());
  auto end = got.back();
  EXPECT_EQ(end["flow-lifecycle"]["state"], "end") << end.dump();
  ASSERT_TRUE(end.contains("netlink"));
  EXPECT_EQ(end["netlink"]["tcp_info"]["bytes_acked"], sizeof data + 1);
  // What the Scitags collector reads (as XRootD sends it): usage from this host's socket (the
  // client, which sent the data) and netlink.rtt in milliseconds. bytes_acked counts the SYN (and
  // the FIN once acked) as one byte each, hence "close to".
  ASSERT_TRUE(end.contains("usage")) << end.dump();
  const auto sent = end["usage"]["sent"].get<std::uint64_t>();
  EXPECT_GE(sent, sizeof data);
  EXPECT_LE(sent, sizeof data + 2);
  EXPECT_LE(end["usage"]["received"].get<std::uint64_t>(), 1u);  // at most the peer's FIN
  ASSERT_TRUE(end["netlink"].contains("rtt")) << end.dump();
  ASSERT_TRUE(end["netlink"]["rtt"].is_number());
  const double rtt_ms = end["netlink"]["rtt"].get<double>();
  EXPECT_GT(rtt_ms, 0.0);
  // The same round trip as tcp_info's, in µs: ms, not µs (a veth pair is far under 1 s).
  EXPECT_DOUBLE_EQ(rtt_ms, end["netlink"]["tcp_info"]["rtt"].get<double>() / 1000.0);
  EXPECT_LT(rtt_ms, 1000.0);
  for (const auto& j : got) EXPECT_TRUE(j.contains("usage")) << j.dump();
  // Every firefly of this flow (start, ongoing, end, with netlink and usage) is valid against our
  // schema and the published Scitags v1 schema (as flowd-go ships it).
  ASSERT_GE(datagrams.size(), 4u);
  EXPECT_EQ(firefly_schema_errors(datagrams), "");
  EXPECT_EQ(firefly_schema_errors(datagrams,
                                  fixtures_dir() + "/firefly/flowd-go-firefly-schema-v1.0.0.json"),
            "");
}

TEST_F(ScannerNetns, PerFlowSeriesAreCappedOrOff) {
  Fds fds;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("::", 5000)), 0);
  }
  const std::string keys = "experiment = 2\nactivity = 9\nignore_private = no\ninterval = 1\n";
  start_flowd(config("netlink", keys, "max_flow_series = 1\n"));
  {
    NetnsScope in_a(net->a);
    for (int i = 0; i < 3; ++i) ASSERT_GE(fds.add(tcp_connect(net->addr_b, 5000)), 0);
  }
  ASSERT_EQ(events(3).size(), 3u) << proc->log();
  std::string m = scrape();
  std::size_t series = 0;
  for (std::size_t p = 0; (p = m.find("\nflow_tcp_mss{", p)) != std::string::npos; ++p) ++series;
  EXPECT_EQ(series, 1u) << m;
  EXPECT_EQ(metric_value(m, "flowd_flow_series_overflow_total"), 2);

  kill_and_forget();  // a fresh flowd reports the existing connections again
  start_flowd(config("netlink", keys + "report_existing = yes\n", "flow_metrics = no\n"));
  ASSERT_EQ(events(3).size(), 3u) << proc->log();
  m = scrape();
  EXPECT_EQ(m.find("\nflow_tcp_"), std::string::npos) << m;
  EXPECT_EQ(metric_value(
                m, "flowd_active_flows{activity=\"Debug\",experiment=\"atlas\",origin=\"local\"}"),
            3)
      << m;
}

TEST_F(ScannerNetns, ReportExistingAndPrivateDestinations) {
  Fds fds;
  int c0_port = 0;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("::", 5000)), 0);
  }
  {
    NetnsScope in_a(net->a);
    ASSERT_GE(fds.add(tcp_connect(net->addr_b, 5000, &c0_port)), 0);
  }
  start_flowd(config("netlink",
                     "experiment = 3\nactivity = 3\nreport_existing = yes\nignore_private = no\n"));
  auto ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  EXPECT_EQ(ev[0].state, "start");
  EXPECT_EQ(ev[0].src_port, c0_port);
  EXPECT_EQ(ev[0].exp, 3);

  // The default ignore_private = yes: the ULA peer is private, so nothing is reported (by a fresh
  // flowd; one that follows on the killed one's flow ends it, now excluded).
  kill_and_forget();
  start_flowd(config("netlink", "experiment = 3\nactivity = 3\nreport_existing = yes\n"));
  EXPECT_TRUE(events(1, 2000ms).empty());
  auto seen = metric_value(scrape(), "flowd_scan_connections{plugin=\"netlink\"}");
  ASSERT_TRUE(seen);
  EXPECT_GE(*seen, 1) << "the connection was seen, and filtered";
}

// Issue 15, defect 3: np_api reports a connection the netlink plugin reports too (its flow is then
// hidden, held by the bus's arbiter); a reload restarts netlink while np_api's report is live. The
// successor takes the hidden flow over, so that when np_api's report ends and the flow is netlink's
// again, netlink's end comes when the connection closes. Before, the successor adopted the
// connection silently and the flow restarted at np_api's end was never ended.
TEST_F(ScannerNetns, ARestartedScannerEndsTheFlowAnExplicitReportHid) {
  Fds fds;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("198.18.0.2", 5000)), 0);
  }
  const std::string keys = "experiment = 2\nactivity = 9\nignore_private = no\n";
  start_flowd(beside_np_api(config("netlink", keys + "interval = 200ms\n"), "netlink"));
  int port = 0, client;
  {
    NetnsScope in_a(net->a);
    client = fds.add(tcp_connect("198.18.0.2", 5000, &port));
  }
  ASSERT_GE(client, 0);
  std::vector<Event> all = events(1);
  ASSERT_EQ(all.size(), 1u) << proc->log();
  const std::string tuple = " tcp 198.18.0.1 " + std::to_string(port) + " 198.18.0.2 5000 3 3";
  pipe_line("start" + tuple);
  auto more = events(2);  // netlink's end, np_api's start
  all.insert(all.end(), more.begin(), more.end());
  reload(beside_np_api(config("netlink", keys + "interval = 300ms\n"), "netlink"));
  // Said by the new plugin's thread once it runs, which may be after the reload's own line.
  const std::string followed =
      "1 connection followed on from before the reload; 0 new started by the first scan";
  for (int i = 0; i < 300 && count(followed) == 0; ++i) usleep(10000);
  EXPECT_EQ(count(followed), 1) << proc->log();
  EXPECT_TRUE(events(1, 1000ms).empty()) << "a restart ends nothing\n" << proc->log();
  pipe_line("end" + tuple);
  more = events(2);  // np_api's end, netlink's start again
  all.insert(all.end(), more.begin(), more.end());
  ::shutdown(client, SHUT_RDWR);
  more = events(1);  // netlink's end
  all.insert(all.end(), more.begin(), more.end());
  std::ostringstream seen;
  for (const auto& e : all)
    seen << e.state << " " << e.exp << " " << e.src_port << " " << e.start_time << " " << e.end_time
         << "\n";
  const std::vector<std::pair<std::string, int>> want = {{"start", 2}, {"end", 2},   {"start", 3},
                                                         {"end", 3},   {"start", 2}, {"end", 2}};
  ASSERT_EQ(all.size(), want.size()) << seen.str() << proc->log();
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(all[i].state, want[i].first) << i << "\n" << seen.str();
    EXPECT_EQ(all[i].exp, want[i].second) << i << "\n" << seen.str();
    EXPECT_EQ(all[i].src_port, port) << i << "\n" << seen.str();
  }
  EXPECT_TRUE(events(1, 1000ms).empty()) << proc->log();
  std::string m = scrape();
  EXPECT_EQ(metric_value(m,
                         "flowd_active_flows{activity=\"Debug\",experiment=\"atlas\",origin="
                         "\"local\"}")
                .value_or(0),
            0)
      << m;
  // Defect 2: what the plugins published (netlink's start and end, np_api's) and what the arbiter
  // made at the two hand-overs are counted apart: passed + held + dropped = published, passed +
  // added = what the backends got.
  auto arbiter = [&](const std::string& outcome) {
    return metric_value(m, "flowd_local_flow_arbiter_events_total{outcome=\"" + outcome + "\"}");
  };
  EXPECT_EQ(arbiter("passed"), 4) << m;
  EXPECT_EQ(arbiter("added"), 2) << m;
  EXPECT_EQ(arbiter("held"), 0) << m;
  EXPECT_EQ(arbiter("dropped"), 0) << m;
  EXPECT_EQ(metric_value(m, "flowd_local_flow_arbiter_evictions_total{live=\"both\"}"), 0) << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
  EXPECT_TRUE(events(1, 500ms).empty()) << "nothing left to end at the stop\n" << proc->log();
}

// A sub-second interval is accepted and honoured: the scanner's timerfd is armed in milliseconds.
TEST_F(ScannerNetns, SubSecondIntervalScansSeveralTimesASecond) {
  start_flowd(
      config("netlink", "experiment = 2\nactivity = 9\nignore_private = no\ninterval = 200ms\n"));
  auto scans = [this] {
    return metric_value(scrape(), "flowd_scans_total{plugin=\"netlink\"}").value_or(-100);
  };
  const double before = scans();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double after = scans();
  // About 7 scans in 1.5 s; at the 2 s default there would be at most one.
  EXPECT_GE(after - before, 4) << proc->log();
  EXPECT_LE(after - before, 10) << proc->log();
}

TEST_F(ScannerNetns, NetstatFromProcNetTcp) {
  Fds fds;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("0.0.0.0", 5000)), 0);
    ASSERT_GE(fds.add(tcp_listen("::", 5000)), 0);
  }
  start_flowd(config("netstat",
                     "experiment = atlas\nactivity = Debug\ninternal_networks = 198.19.0.0/16\n"
                     "ignore_private = no\ninterval = 1\n"));
  int v4_port = 0, v6_port = 0, internal_port = 0, c4, c6;
  {
    NetnsScope in_a(net->a);
    c4 = fds.add(tcp_connect("198.18.0.2", 5000, &v4_port));
    c6 = fds.add(tcp_connect(net->addr_b, 5000, &v6_port));
    fds.add(tcp_connect("198.19.0.2", 5000, &internal_port));
  }
  auto started = events(2);
  ASSERT_EQ(started.size(), 2u) << proc->log();
  std::set<int> ports{started[0].src_port, started[1].src_port};
  EXPECT_EQ(ports, (std::set<int>{v4_port, v6_port}));
  for (const auto& e : started) {
    EXPECT_EQ(e.state, "start");
    EXPECT_EQ(e.exp, 2);
    EXPECT_EQ(e.act, 9);
    EXPECT_EQ(e.dst, e.src_port == v4_port ? "198.18.0.2" : net->addr_b);
  }
  ::shutdown(c4, SHUT_RDWR);
  ::shutdown(c6, SHUT_RDWR);
  auto ended = events(2);
  ASSERT_EQ(ended.size(), 2u) << proc->log();
  for (const auto& e : ended) EXPECT_EQ(e.state, "end");
  EXPECT_EQ(metric_value(scrape(), "flowd_netstat_bad_lines_total{reason=\"fields\"}"), 0);
}

TEST_F(ScannerNetns, IperfConnectionsGetAPairFromFlowIds) {
  Fds fds;
  std::string out;
  ASSERT_EQ(run_shell("ip netns exec " + net->b + " iperf3 -s -1 -p 5201 > " +
                          dir.file("iperf-s.log") + " 2>&1 & echo $!",
                      "", out),
            0);
  iperf_pid = std::stoi(out);
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("::", 5000)), 0);
  }
  start_flowd(
      config("iperf", "flow_ids = 2:9, 3:3, cms:Cache\nignore_private = no\ninterval = 1\n"));
  int other_port = 0;
  {
    NetnsScope in_a(net->a);
    fds.add(tcp_connect(net->addr_b, 5000, &other_port));  // not iperf3's: not reported
  }
  for (int i = 0; i < 100; ++i) {
    std::string ss_out;
    net->exec(net->b, "ss -tlnH sport = :5201", ss_out);
    if (!ss_out.empty()) break;
    usleep(20000);
  }
  ASSERT_EQ(net->exec(net->a, "iperf3 -c " + net->addr_b + " -p 5201 -t 3 -i 0", out), 0) << out;
  // Control and data connections: a start each, then an end each with the same pair.
  auto ev = events(4, 3000ms);
  std::map<int, std::vector<Event>> by_port;
  for (const auto& e : ev) by_port[e.src_port].push_back(e);
  EXPECT_GE(by_port.size(), 2u) << proc->log();
  EXPECT_FALSE(by_port.contains(other_port));
  const std::set<std::pair<int, int>> allowed{{2, 9}, {3, 3}};
  for (const auto& [port, list] : by_port) {
    ASSERT_EQ(list.size(), 2u) << "port " << port;
    EXPECT_EQ(list[0].state, "start");
    EXPECT_EQ(list[1].state, "end");
    EXPECT_EQ(list[0].dst_port, 5201);
    EXPECT_TRUE(allowed.contains({list[0].exp, list[0].act})) << list[0].exp << "/" << list[0].act;
    EXPECT_EQ(list[0].exp, list[1].exp);
    EXPECT_EQ(list[0].act, list[1].act);
  }
}

TEST_F(ScannerNetns, IperfPortRangeTakesPairsRoundRobin) {
  // The original's iperf_rr: any connection to or from a port in `ports` is reported, whatever
  // process owns it, and the flow_ids pairs are handed out in turn; an end repeats its start's
  // pair.
  Fds fds;
  {
    NetnsScope in_b(net->b);
    for (int port : {5300, 5301, 5000}) ASSERT_GE(fds.add(tcp_listen("::", port)), 0);
  }
  start_flowd(config(
      "iperf", "flow_ids = 2:9, 3:3\nports = 5300-5301\nignore_private = no\ninterval = 1\n"));
  int p1 = 0, p2 = 0, outside = 0, c1, c2;
  {
    NetnsScope in_a(net->a);
    c1 = fds.add(tcp_connect(net->addr_b, 5300, &p1));
    c2 = fds.add(tcp_connect(net->addr_b, 5301, &p2));
    fds.add(tcp_connect(net->addr_b, 5000, &outside));
  }
  auto started = events(2);
  ASSERT_EQ(started.size(), 2u) << proc->log();
  std::map<int, std::pair<int, int>> pair_of;
  for (const auto& e : started) {
    EXPECT_EQ(e.state, "start");
    pair_of[e.src_port] = {e.exp, e.act};
  }
  EXPECT_EQ(pair_of.size(), 2u);
  EXPECT_TRUE(pair_of.contains(p1) && pair_of.contains(p2)) << "port 5000 is outside the range";
  std::set<std::pair<int, int>> pairs;
  for (const auto& [port, p] : pair_of) pairs.insert(p);
  EXPECT_EQ(pairs, (std::set<std::pair<int, int>>{{2, 9}, {3, 3}})) << "one of each, in turn";
  ::shutdown(c1, SHUT_RDWR);
  ::shutdown(c2, SHUT_RDWR);
  auto ended = events(2);
  ASSERT_EQ(ended.size(), 2u) << proc->log();
  for (const auto& e : ended) {
    EXPECT_EQ(e.state, "end");
    EXPECT_EQ(std::make_pair(e.exp, e.act), pair_of[e.src_port]);
  }
}

}  // namespace
}  // namespace flowd::test
