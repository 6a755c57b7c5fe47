// SPDX-License-Identifier: Apache-2.0
// `flowd analyze` run as the real binary: on the stored export captures (whose source traffic the
// fixtures' README lists), on dumps made by `flowd decode` (plain and gzip), and on hand-made dumps
// with missing times, malformed lines and a truncated gzip.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "daemon_fixture.hpp"
#include "harness.hpp"

namespace flowd::test {
namespace {

using nlohmann::json;

std::string capture(const std::string& name) {
  return fixtures_dir() + "/netflow/" + name + ".pcap";
}

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> v;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) v.push_back(json::parse(line));
  return v;
}

std::vector<json> analyze_json(const std::vector<std::string>& args, std::string* err_out = nullptr,
                               int want_rc = 0) {
  std::vector<std::string> full = {"analyze", "--json"};
  full.insert(full.end(), args.begin(), args.end());
  std::string out, err;
  EXPECT_EQ(run_flowd(full, out, err), want_rc) << err;
  if (err_out) *err_out = err;
  return json_lines(out);
}

// The connection between two endpoints, whichever side the output calls the source.
const json* find(const std::vector<json>& conns, const std::string& a, int aport,
                 const std::string& b, int bport) {
  for (const auto& c : conns) {
    if (c["source_address"] == a && c["source_port"] == aport && c["destination_address"] == b &&
        c["destination_port"] == bport)
      return &c;
    if (c["source_address"] == b && c["source_port"] == bport && c["destination_address"] == a &&
        c["destination_port"] == aport)
      return &c;
  }
  return nullptr;
}

// Direction-free form of a connection: {protocol, endpoints sorted} -> bytes/packets each endpoint
// sent.
using Side = std::tuple<std::string, int, std::uint64_t, std::uint64_t>;
std::set<std::tuple<int, Side, Side>> unordered_pairs(const std::vector<json>& conns) {
  std::set<std::tuple<int, Side, Side>> s;
  for (const auto& c : conns) {
    Side src{c["source_address"], c["source_port"], c["octets"], c["packets"]};
    Side dst{c["destination_address"], c["destination_port"], c["reverse_octets"],
             c["reverse_packets"]};
    if (dst < src) std::swap(src, dst);
    s.emplace(c["protocol"].get<int>(), src, dst);
  }
  return s;
}

TEST(FlowdAnalyze, IpfixCaptureGivesTheKnownTraffic) {
  std::string err;
  auto conns = analyze_json({capture("softflowd-ipfix")}, &err);
  // 30 records: 12 two-way conversations and 3 one-way multicast (MLD, ND) flows.
  ASSERT_EQ(conns.size(), 15u) << err;
  EXPECT_NE(err.find("records 30, connections 15 (paired 12: matched 12, biflow 0; unpaired 3;"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("skipped 1 (options 1, no_addresses 0), malformed lines 0"), std::string::npos)
      << err;

  // iperf3 -n 1M over IPv4: one connection, ~1 MB from the client, only ACKs back.
  const json* v4 = find(conns, "192.0.2.1", 40010, "192.0.2.2", 5201);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ((*v4)["source_port"], 40010) << "the client is the source";
  EXPECT_EQ((*v4)["pairing"], "matched");
  EXPECT_GE((*v4)["octets"].get<std::uint64_t>(), 1048576u);
  EXPECT_LT((*v4)["octets"].get<std::uint64_t>(), 1200000u);
  EXPECT_LT((*v4)["reverse_octets"].get<std::uint64_t>(), 50000u);
  EXPECT_EQ((*v4)["protocol_name"], "tcp");
  EXPECT_EQ((*v4)["service_port"], 5201);
  EXPECT_EQ((*v4)["time_source"], "flow");
  // iperf3 -6 -n 200K: ~200 KB one way.
  const json* v6 = find(conns, "2001:db8::1", 40011, "2001:db8::2", 5202);
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ((*v6)["source_port"], 40011);
  EXPECT_GE((*v6)["octets"].get<std::uint64_t>(), 204800u);
  EXPECT_LT((*v6)["reverse_octets"].get<std::uint64_t>(), 20000u);
  // The nc exchanges, both ways.
  for (auto [a, ap, b, bp] : {std::tuple{"192.0.2.1", 40001, "192.0.2.2", 7000},
                              std::tuple{"2001:db8::1", 40002, "2001:db8::2", 7001}}) {
    const json* c = find(conns, a, ap, b, bp);
    ASSERT_NE(c, nullptr) << a << ":" << ap;
    EXPECT_EQ((*c)["source_port"], ap);
    EXPECT_EQ((*c)["pairing"], "matched");
    EXPECT_GT((*c)["reverse_packets"].get<int>(), 0);
  }
  // The refused connections: one SYN, one RST back.
  for (auto [a, ap, b] : {std::tuple{"192.0.2.1", 40003, "192.0.2.2"},
                          std::tuple{"2001:db8::1", 40004, "2001:db8::2"}}) {
    const json* c = find(conns, a, ap, b, 7999);
    ASSERT_NE(c, nullptr) << ap;
    EXPECT_EQ((*c)["packets"], 1);
    EXPECT_EQ((*c)["reverse_packets"], 1);
  }
  // The UDP echoes: 3 datagrams each way.
  for (auto [a, ap, b] : {std::tuple{"192.0.2.1", 40005, "192.0.2.2"},
                          std::tuple{"2001:db8::1", 40006, "2001:db8::2"}}) {
    const json* c = nullptr;
    for (const auto& x : conns)
      if (x["protocol"] == 17 && x["source_address"] == a && x["source_port"] == ap) c = &x;
    ASSERT_NE(c, nullptr) << ap;
    EXPECT_EQ((*c)["destination_address"], b);
    EXPECT_EQ((*c)["packets"], 3);
    EXPECT_EQ((*c)["reverse_packets"], 3);
  }
  // The pings: one ICMP conversation, both ways.
  const json* ping = find(conns, "192.0.2.1", 0, "192.0.2.2", 0);
  ASSERT_NE(ping, nullptr);
  EXPECT_EQ((*ping)["protocol_name"], "icmp");
  EXPECT_EQ((*ping)["pairing"], "matched");
  EXPECT_TRUE((*ping)["service_port"].is_null());
  // Sorted by start time.
  for (std::size_t i = 1; i < conns.size(); ++i)
    EXPECT_LE(conns[i - 1]["start"].get<std::string>(), conns[i]["start"].get<std::string>());
}

TEST(FlowdAnalyze, BiflowCaptureGivesTheSamePairsAsUnidirectional) {
  std::string err;
  auto bi = analyze_json({capture("softflowd-ipfix-biflow-ether")}, &err);
  EXPECT_NE(err.find("biflow 12; unpaired 3;"), std::string::npos) << err;
  auto uni = analyze_json({capture("softflowd-ipfix")});
  EXPECT_EQ(unordered_pairs(bi), unordered_pairs(uni));
  const json* v4 = find(bi, "192.0.2.1", 40010, "192.0.2.2", 5201);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ((*v4)["pairing"], "biflow");
  EXPECT_EQ((*v4)["records"], 1);
}

TEST(FlowdAnalyze, EveryExporterPairsTheSameConversations) {
  // v1/v5 carry IPv4 only: 6 conversations; the others 15 (pmacctd has no options record).
  for (const auto& [name, count] :
       std::map<std::string, std::size_t>{{"softflowd-v1", 6},
                                          {"softflowd-v5", 6},
                                          {"fprobe-v5", 6},
                                          {"pmacctd-nfprobe-v5", 6},
                                          {"softflowd-v9", 15},
                                          {"pmacctd-nfprobe-v9", 15},
                                          {"pmacctd-nfprobe-v10", 15},
                                          {"softflowd-ipfix-milli", 15},
                                          {"softflowd-ipfix-tcp", 15}}) {
    auto conns = analyze_json({capture(name)});
    EXPECT_EQ(conns.size(), count) << name;
    const json* v4 = find(conns, "192.0.2.1", 40010, "192.0.2.2", 5201);
    ASSERT_NE(v4, nullptr) << name;
    EXPECT_EQ((*v4)["source_port"], 40010) << name;
    EXPECT_GE((*v4)["octets"].get<std::uint64_t>(), 1048576u) << name;
  }
}

TEST(FlowdAnalyze, DumpFromDecodeGivesWhatTheCaptureGives) {
  TempDir d;
  std::string dump, err;
  ASSERT_EQ(run_flowd({"decode", capture("softflowd-ipfix")}, dump, err), 0) << err;
  d.write("dump.json", dump);
  std::string ignored;
  ASSERT_EQ(
      run_shell("gzip -c " + d.file("dump.json") + " > " + d.file("dump.json.gz"), "", ignored), 0);
  std::string from_capture, from_dump, from_gzip;
  ASSERT_EQ(run_flowd({"analyze", "--json", capture("softflowd-ipfix")}, from_capture, err), 0);
  ASSERT_EQ(run_flowd({"analyze", "--json", d.file("dump.json")}, from_dump, err), 0) << err;
  EXPECT_NE(err.find("records 30, connections 15"), std::string::npos) << err;
  ASSERT_EQ(run_flowd({"analyze", "--json", d.file("dump.json.gz")}, from_gzip, err), 0) << err;
  EXPECT_EQ(from_dump, from_capture);
  EXPECT_EQ(from_gzip, from_capture);
  // Standard input too.
  std::string from_stdin;
  ASSERT_EQ(
      run_shell(flowd_binary() + " analyze --json - < " + d.file("dump.json.gz") + " 2>/dev/null",
                "", from_stdin),
      0);
  EXPECT_EQ(from_stdin, from_capture);
}

TEST(FlowdAnalyze, TheNetflowPluginsGzipDumpGivesWhatTheCaptureGives) {
  // The real collector: softflowd's IPFIX exports sent to the daemon, which writes `dump = *.gz`.
  Daemon d;
  const int nf_port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
         "\ntcp_listen =\ndump = " + d.dir.file("records.json.gz") + "\n";
  d.start(cfg);
  std::string hex;
  ASSERT_EQ(
      run_shell("tshark -r " + capture("softflowd-ipfix") + " -T fields -e udp.payload 2>/dev/null",
                "", hex),
      0);
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);  // one exporter, as in the capture
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(nf_port));
  std::istringstream lines(hex);
  for (std::string h; std::getline(lines, h);) {
    std::string bytes;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
      bytes.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
    sendto(sock, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  close(sock);
  const std::string series = "flowd_netflow_records_total{version=\"10\"}";
  EXPECT_EQ(metric_sum(d.scrape_until(series, 31), series), 31);  // 30 flows + 1 options record
  ASSERT_EQ(d.stop(), 0);
  std::string err;
  auto from_dump = analyze_json({d.dir.file("records.json.gz")}, &err);
  EXPECT_NE(err.find("records 30, connections 15"), std::string::npos) << err;
  // Times of receipt differ from the capture's, flow times and counters do not.
  EXPECT_EQ(unordered_pairs(from_dump),
            unordered_pairs(analyze_json({capture("softflowd-ipfix")})));
  const json* v4 = find(from_dump, "192.0.2.1", 40010, "192.0.2.2", 5201);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ((*v4)["source_port"], 40010);
  EXPECT_EQ((*v4)["time_source"], "flow");
}

TEST(FlowdAnalyze, TableForAPerson) {
  std::string out, err;
  ASSERT_EQ(run_flowd({"analyze", capture("softflowd-ipfix")}, out, err), 0) << err;
  std::istringstream in(out);
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header.rfind("START (UTC)", 0), 0u) << header;
  const auto bytes_end = header.find("BYTES>") + 6;
  int rows = 0;
  bool saw_iperf = false;
  while (std::getline(in, line)) {
    ++rows;
    EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(line[bytes_end - 1])))
        << "right-aligned bytes: " << line;
    if (line.find("192.0.2.1:40010") != std::string::npos &&
        line.find("1086685") != std::string::npos)
      saw_iperf = true;
  }
  EXPECT_EQ(rows, 15);
  EXPECT_TRUE(saw_iperf) << out;
}

TEST(FlowdAnalyze, SortBytesIsLargestFirst) {
  auto conns = analyze_json({"--sort", "bytes", capture("softflowd-ipfix")});
  ASSERT_EQ(conns.size(), 15u);
  auto total = [](const json& c) {
    return c["octets"].get<std::uint64_t>() + c["reverse_octets"].get<std::uint64_t>();
  };
  for (std::size_t i = 1; i < conns.size(); ++i) EXPECT_GE(total(conns[i - 1]), total(conns[i]));
  EXPECT_EQ(conns[0]["source_port"], 40010);
  // A buffer of 3: the top 3, and the rest counted.
  std::string err;
  auto top = analyze_json({"--sort", "bytes", "--buffer", "3", capture("softflowd-ipfix")}, &err);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0], conns[0]);
  EXPECT_NE(err.find("kept the 3 largest connections; 12 smaller ones were not printed"),
            std::string::npos)
      << err;
}

const std::string kTime = R"("time":"2026-11-22T14:12:41.000000+00:00")";

TEST(FlowdAnalyze, RecordsWithoutTimesAndMalformedLines) {
  TempDir d;
  std::string dump;
  // 1: no flowStart/flowEnd: the receive time is used, and said.
  dump +=
      "{" + kTime +
      R"(,"options":false,"fields":{"sourceIPv4Address":"192.0.2.1","destinationIPv4Address":"192.0.2.2",)"
      R"("sourceTransportPort":40001,"destinationTransportPort":7000,"protocolIdentifier":6,"octetDeltaCount":285,"packetDeltaCount":5}})"
      "\n";
  // 2: its reverse, with times.
  dump +=
      "{" + kTime +
      R"(,"options":false,"fields":{"sourceIPv4Address":"192.0.2.2","destinationIPv4Address":"192.0.2.1",)"
      R"("sourceTransportPort":7000,"destinationTransportPort":40001,"protocolIdentifier":6,"octetDeltaCount":164,)"
      R"("flowStartMilliseconds":"2026-11-22T14:12:39.873Z","flowEndMilliseconds":"2026-11-22T14:12:39.874+00:00"}})"
      "\n";
  dump += "{" + kTime +
          R"(,"options":true,"fields":{"samplingInterval":1}})"
          "\n";  // 3: options
  dump += "{" + kTime +
          R"(,"options":false,"fields":{"octetDeltaCount":1}})"
          "\n";                  // 4: no addresses
  dump += "this is not json\n";  // 5
  dump += "{" + kTime +
          R"(,"fields":{"sourceIPv4Address":1,"destinationIPv4Address":"192.0.2.2"}})"
          "\n";  // 6: type
  dump += R"({"fields":{"sourceIPv4Address":"192.0.2.1","destinationIPv4Address":"192.0.2.2"}})"
          "\n";                                                           // 7: no time
  dump += "\n";                                                           // 8: blank
  dump += "{" + kTime + R"(,"fields":{"sourceIPv4Address":"192.0.2.9")";  // 9: cut off
  d.write("dump.json", dump);
  std::string err;
  auto conns = analyze_json({d.file("dump.json")}, &err);
  ASSERT_EQ(conns.size(), 1u) << err;
  EXPECT_EQ(conns[0]["time_source"], "received");
  EXPECT_EQ(conns[0]["pairing"], "matched");
  // An arrival time says nothing about who started: the server side is the lower port.
  EXPECT_EQ(conns[0]["source_port"], 40001);
  EXPECT_EQ(conns[0]["octets"], 285);
  EXPECT_EQ(conns[0]["reverse_octets"], 164);
  EXPECT_NE(err.find("skipped 2 (options 1, no_addresses 1), malformed lines 4"), std::string::npos)
      << err;
  EXPECT_NE(err.find("json 2, missing 1, type 1"), std::string::npos) << err;
  EXPECT_NE(err.find(d.file("dump.json") + ":5: malformed line (json)"), std::string::npos) << err;
  EXPECT_NE(err.find(d.file("dump.json") + ":6: malformed line (type)"), std::string::npos) << err;
  EXPECT_NE(err.find(d.file("dump.json") + ":7: malformed line (missing)"), std::string::npos)
      << err;
  EXPECT_NE(err.find(":9: malformed line (json)"), std::string::npos) << err;
  EXPECT_NE(err.find("no newline"), std::string::npos) << err;
  EXPECT_NE(err.find("timed by their arrival"), std::string::npos) << err;
}

TEST(FlowdAnalyze, MalformedLineMessagesAreRateLimited) {
  TempDir d;
  std::string dump;
  for (int i = 0; i < 1000; ++i) dump += "garbage " + std::to_string(i) + "\n";
  d.write("bad.json", dump);
  std::string out, err;
  ASSERT_EQ(run_flowd({"analyze", d.file("bad.json")}, out, err), 0) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 5 + 1 + 2)
      << err;  // 5 lines, "further", summary
  EXPECT_NE(err.find("further malformed lines (json) are only counted"), std::string::npos) << err;
  EXPECT_NE(err.find("malformed lines 1000"), std::string::npos) << err;
}

TEST(FlowdAnalyze, TruncatedGzipAnalyzesWhatCameBeforeAndFails) {
  TempDir d;
  std::string dump, err;
  ASSERT_EQ(run_flowd({"decode", capture("softflowd-ipfix")}, dump, err), 0);
  std::string many;
  for (int i = 0; i < 400; ++i) many += dump;
  d.write("dump.json", many);
  std::string ignored;
  ASSERT_EQ(run_shell("gzip -c " + d.file("dump.json") + " > " + d.file("full.gz"), "", ignored),
            0);
  const auto size = std::filesystem::file_size(d.file("full.gz"));
  std::filesystem::copy_file(d.file("full.gz"), d.file("cut.gz"));
  std::filesystem::resize_file(d.file("cut.gz"), size / 2);
  auto conns = analyze_json({d.file("cut.gz")}, &err, 1);
  EXPECT_FALSE(conns.empty());
  EXPECT_NE(err.find("truncated gzip stream"), std::string::npos) << err;
}

TEST(FlowdAnalyze, WindowEvictionIsCounted) {
  TempDir d;
  auto line = [](const std::string& t, const std::string& src, int sport, const std::string& dst,
                 int dport) {
    return R"({"time":")" + t + R"(","fields":{"sourceIPv4Address":")" + src +
           R"(","destinationIPv4Address":")" + dst + R"(","sourceTransportPort":)" +
           std::to_string(sport) + R"(,"destinationTransportPort":)" + std::to_string(dport) +
           R"(,"protocolIdentifier":6,"octetDeltaCount":100}})"
           "\n";
  };
  d.write("dump.json", line("2026-11-22T14:00:00Z", "192.0.2.1", 40001, "192.0.2.2", 7000) +
                           line("2026-11-22T14:01:40Z", "192.0.2.3", 1, "192.0.2.4", 2) +
                           line("2026-11-22T14:03:20Z", "192.0.2.2", 7000, "192.0.2.1", 40001));
  std::string err;
  auto conns = analyze_json({"--window", "10", d.file("dump.json")}, &err);
  EXPECT_EQ(conns.size(), 3u);
  EXPECT_NE(err.find("paired 0: matched 0, biflow 0; unpaired 3;"), std::string::npos) << err;
  conns = analyze_json({"--window", "300", d.file("dump.json")}, &err);
  EXPECT_EQ(conns.size(), 2u);
  EXPECT_NE(err.find("matched 1, biflow 0; unpaired 1;"), std::string::npos) << err;
  conns = analyze_json({"--window", "1000", "--max-open", "1", d.file("dump.json")}, &err);
  EXPECT_NE(err.find("evicted early 2"), std::string::npos) << err;
}

TEST(FlowdAnalyze, ResolveNamesLoopback) {
  TempDir d;
  d.write(
      "dump.json",
      "{" + kTime +
          R"(,"fields":{"sourceIPv4Address":"127.0.0.1","destinationIPv4Address":"127.0.0.1",)"
          R"("sourceTransportPort":40001,"destinationTransportPort":7000,"protocolIdentifier":6}})"
          "\n");
  std::string err;
  auto conns = analyze_json({"--resolve", d.file("dump.json")}, &err);
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(conns[0]["source_name"], "localhost");
  EXPECT_EQ(conns[0]["destination_name"], "localhost");
  EXPECT_NE(err.find("reverse DNS: 1 lookups, 1 names"), std::string::npos) << err;
  // Without --resolve: no lookups, no name keys.
  conns = analyze_json({d.file("dump.json")}, &err);
  EXPECT_FALSE(conns[0].contains("source_name"));
  EXPECT_EQ(err.find("reverse DNS"), std::string::npos);
}

TEST(FlowdAnalyze, ScitagsLabelIsNamed) {
  TempDir d;
  // 65572 = 0x10024: atlas (2) / Debug (9), as in the malformed/ipfix-flowlabel-scitags fixture.
  d.write(
      "dump.json",
      "{" + kTime +
          R"(,"fields":{"sourceIPv6Address":"2001:db8::1","destinationIPv6Address":"2001:db8::2",)"
          R"("flowLabelIPv6":65572,"protocolIdentifier":6}})"
          "\n");
  auto conns = analyze_json({d.file("dump.json")});
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_EQ(conns[0]["flow_label"], 65572);
  EXPECT_EQ(conns[0]["experiment"], "atlas");
  EXPECT_EQ(conns[0]["activity"], "Debug");
}

TEST(FlowdAnalyze, UsageErrors) {
  std::string out, err;
  EXPECT_EQ(run_flowd({"analyze"}, out, err), 2);
  EXPECT_EQ(run_flowd({"analyze", "--sort", "size", capture("softflowd-ipfix")}, out, err), 2);
  EXPECT_NE(err.find("--sort: must be start, bytes or none, not 'size'"), std::string::npos) << err;
  EXPECT_NE(err.find("Usage: flowd analyze"), std::string::npos) << err;
  EXPECT_EQ(run_flowd({"analyze", "/nonexistent.json"}, out, err), 1);
  EXPECT_NE(err.find("/nonexistent.json: cannot open"), std::string::npos) << err;
}

}  // namespace
}  // namespace flowd::test
