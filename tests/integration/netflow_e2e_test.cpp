// SPDX-License-Identifier: Apache-2.0
// The netflow plugin end to end: real UDP exports into the real daemon, fireflies out; and
// `flowd decode` on the stored captures.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

std::string fixture(const std::string& rel) {
  return read_file(fixtures_dir() + "/" + rel);
}

void send_udp(int port, const std::string& payload) {
  send_udp_payloads(port, {payload});
}

// The fixture's documentation addresses become ::1, where the test listens on the firefly port:
// observed flows must not reach it.
std::string to_loopback(std::string payload) {
  std::array<std::uint8_t, 16> from1{}, from2{}, lo{};
  inet_pton(AF_INET6, "2001:db8::1", from1.data());
  inet_pton(AF_INET6, "2001:db8::2", from2.data());
  lo[15] = 1;
  for (const auto& from : {from1, from2}) {
    std::string needle(from.begin(), from.end());
    for (auto at = payload.find(needle); at != std::string::npos; at = payload.find(needle, at + 1))
      payload.replace(at, 16, std::string(lo.begin(), lo.end()));
  }
  return payload;
}

TEST(NetflowEndToEnd, ScitagsFlowLabelsInAnIpfixExportBecomeFirefliesForTheCollector) {
  Daemon d;
  UdpReceiver collector(true);
  int nf_port = free_udp_port();
  std::string cfg = d.config("collector = [::1]:" + std::to_string(collector.port()) +
                             "\nforward_observed = yes\n");
  cfg.replace(cfg.find("plugins = np_api"), 16, "plugins = np_api, netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
         "\ntcp_listen =\nidle_timeout = 1\ndump = " + d.dir.file("records.json") + "\n";
  d.start(cfg);
  send_udp(nf_port, to_loopback(fixture("malformed/ipfix-flowlabel-scitags.bin")));
  auto got = collector.receive_many(3);
  ASSERT_EQ(got.size(), 3u) << d.proc->log();
  std::set<std::tuple<int, int, int, int>> seen;  // sport, dport, exp, act
  for (const auto& f : got) {
    auto j = nlohmann::json::parse(f.substr(f.find('{')));
    EXPECT_EQ(j["flow-lifecycle"]["state"], "start");
    EXPECT_EQ(j["flow-id"]["dst-ip"], "::1");
    seen.insert(std::make_tuple(
        j["flow-id"]["src-port"].get<int>(), j["flow-id"]["dst-port"].get<int>(),
        j["context"]["experiment-id"].get<int>(), j["context"]["activity-id"].get<int>()));
  }
  EXPECT_EQ(seen, (std::set<std::tuple<int, int, int, int>>{
                      {40011, 5202, 2, 9}, {40012, 5202, 2, 9}, {5202, 40011, 3, 4}}));
  // No further record: each flow ends after idle_timeout.
  auto ends = collector.receive_many(3, 5s);
  ASSERT_EQ(ends.size(), 3u) << d.proc->log();
  for (const auto& f : ends) EXPECT_NE(f.find("\"state\": \"end\""), std::string::npos) << f;
  EXPECT_FALSE(d.rx6.receive(10ms))
      << "an observed flow's firefly never goes to the flow's address";
  std::string m = d.scrape();
  EXPECT_EQ(metric_sum(m, "flowd_netflow_packets_total{version=\"10\"}"), 1);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_records_total{version=\"10\"}"), 3);
  EXPECT_EQ(
      metric_value(
          m, "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}"),
      3);
  EXPECT_EQ(d.stop(), 0);
  std::string dump = read_file(d.dir.file("records.json"));
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 3) << dump;
  EXPECT_NE(dump.find("\"flowLabelIPv6\":590117"), std::string::npos) << dump;
}

TEST(NetflowEndToEnd, MalformedExportsAreCountedAndTheDaemonStaysUp) {
  Daemon d;
  int nf_port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) + "\ntcp_listen =\n";
  d.start(cfg);
  for (const char* f :
       {"v5-truncated-header.bin", "v5-count-exceeds-payload.bin", "v9-flowset-length-zero.bin",
        "v9-template-field-count-65535.bin", "ipfix-set-length-beyond-message.bin",
        "ipfix-message-length-lt-16.bin", "ipfix-message-length-exceeds-datagram.bin",
        "ipfix-varlen-255-overrun.bin", "ipfix-withdrawal-all.bin"})
    send_udp(nf_port, fixture(std::string("malformed/") + f));
  send_udp(nf_port, std::string("\x00\x07 garbage", 10));
  // The exporter port of a datagram is not known to the test; the errors counter tells when all
  // arrived.
  double errors = 0;
  for (int i = 0; i < 200 && errors < 9; ++i) {
    usleep(10000);
    std::string m = d.scrape();
    errors = 0;
    std::istringstream in(m);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("flowd_netflow_decode_errors_total{", 0) == 0)
        errors += std::stod(line.substr(line.rfind(' ')));
  }
  EXPECT_GE(errors, 9) << d.scrape();
  EXPECT_TRUE(d.proc->running());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  EXPECT_TRUE(d.rx4.receive()) << "the rest of the daemon is unaffected";
  EXPECT_EQ(d.stop(), 0);
}

TEST(NetflowEndToEnd, WorkersShareOnePortAndKeepEachExportersTemplates) {
  // Two SO_REUSEPORT receive threads; 64 exporters each send one IPFIX message whose template and
  // data travel together: every record must be decoded by whichever worker the kernel picked for
  // it.
  Daemon d;
  int nf_port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
         "\ntcp_listen =\nworkers = 2\ndump = " + d.dir.file("records.json") + "\n";
  d.start(cfg);
  std::string out, err;
  ASSERT_EQ(run_shell("ss -Huan 'sport = :" + std::to_string(nf_port) + "' | wc -l", "", out), 0);
  EXPECT_EQ(std::stoi(out), 2) << "one socket per worker";
  send_from_exporters(nf_port, to_loopback(fixture("malformed/ipfix-flowlabel-scitags.bin")), 64);
  std::string m = d.scrape_until("flowd_netflow_records_total{version=\"10\"}", 192);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_records_total{version=\"10\"}"), 192) << m;
  EXPECT_EQ(metric_sum(m, "flowd_netflow_packets_total{version=\"10\"}"), 64);
  EXPECT_EQ(metric_sum(m, "flowd_netflow_templates"), 64);
  EXPECT_EQ(metric_value(m, "flowd_netflow_pending_records"), 0);
  // The same three flows from every exporter: three starts, not 192.
  // Events are published after their datagram batch is decoded (and counted).
  m = d.scrape_until(
      "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}", 3);
  EXPECT_EQ(
      metric_value(
          m, "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"start\"}"),
      3);
  EXPECT_EQ(d.stop(), 0);
  std::string dump = read_file(d.dir.file("records.json"));
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 192);
}

TEST(NetflowEndToEnd, ApplySamplingScalesCountersAsFlowdDecodeDoes) {
  // softflowd -s 2 (sampling options, then data) replayed into the daemon with apply_sampling =
  // yes: the dump holds the same records as `flowd decode --apply-sampling` of the capture.
  Daemon d;
  int nf_port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
         "\ntcp_listen =\napply_sampling = yes\ndump = " + d.dir.file("records.json") + "\n";
  d.start(cfg);
  const std::string pcap = fixtures_dir() + "/netflow/softflowd-v9-sampling2.pcap";
  std::string hex, err;
  ASSERT_EQ(run_shell("tshark -r " + pcap + " -T fields -e udp.payload 2>/dev/null", "", hex), 0);
  std::istringstream lines(hex);
  int sock = socket(AF_INET, SOCK_DGRAM, 0);  // one exporter, as in the capture
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(nf_port));
  int packets = 0;
  for (std::string h; std::getline(lines, h);) {
    std::string bytes;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
      bytes.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    sendto(sock, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ++packets;
  }
  close(sock);
  ASSERT_GT(packets, 0);
  std::string want;
  ASSERT_EQ(run_flowd({"decode", "--apply-sampling", pcap}, want, err), 0) << err;
  std::size_t records = static_cast<std::size_t>(std::count(want.begin(), want.end(), '\n'));
  EXPECT_EQ(metric_sum(d.scrape_until("flowd_netflow_records_total{version=\"9\"}",
                                      static_cast<double>(records)),
                       "flowd_netflow_records_total{version=\"9\"}"),
            static_cast<double>(records));
  EXPECT_EQ(d.stop(), 0);
  // Compare the counters record by record (times of receipt and exporter ports differ).
  auto counters = [](const std::string& text) {
    std::multiset<std::pair<long, long>> s;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      auto f = nlohmann::json::parse(line)["fields"];
      if (f.contains("packetDeltaCount"))
        s.emplace(f["packetDeltaCount"].get<long>(), f["octetDeltaCount"].get<long>());
    }
    return s;
  };
  auto got = counters(read_file(d.dir.file("records.json")));
  EXPECT_EQ(got, counters(want));
  std::string raw;
  ASSERT_EQ(run_flowd({"decode", pcap}, raw, err), 0);
  EXPECT_NE(got, counters(raw)) << "sampling was applied";
}

TEST(FlowdDecode, StoredCapturesDecodeToTheRecordsNfdumpSaw) {
  for (const char* c :
       {"softflowd-v5", "softflowd-v9", "softflowd-ipfix", "pmacctd-nfprobe-v10", "fprobe-v5"}) {
    std::string out, err;
    ASSERT_EQ(run_flowd({"decode", fixtures_dir() + "/netflow/" + c + ".pcap"}, out, err), 0)
        << err;
    std::size_t records = 0;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (!j["options"].get<bool>()) ++records;
      EXPECT_TRUE(j.contains("exporter") && j.contains("fields") && j.contains("time")) << line;
    }
    // nfdump's CSV: a header line, one line per flow, then a summary block after an empty line.
    std::string csv = read_file(fixtures_dir() + "/netflow/" + c + ".nfdump.csv");
    std::size_t rows = 0;
    std::istringstream cin(csv);
    std::string line;
    std::getline(cin, line);
    while (std::getline(cin, line) && !line.empty() && line.rfind("Summary", 0) != 0) ++rows;
    EXPECT_EQ(records, rows) << c << "\n" << err;
  }
  std::string out, err;
  EXPECT_EQ(run_flowd({"decode"}, out, err), 2);
  EXPECT_EQ(run_flowd({"decode", "/nonexistent.pcap"}, out, err), 1);
}

}  // namespace
}  // namespace flowd::test
