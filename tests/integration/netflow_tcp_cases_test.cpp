// SPDX-License-Identifier: Apache-2.0
// fixtures/cases/ipfix-tcp-define-then-withdraw over real TCP sessions to the daemon: every
// variant's stream is written to the netflow plugin's `tcp_listen` socket, and the dump holds
// exactly the records of its expected.md (templates follow the wire order; withdrawn data never
// meets a later definition).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

int connect_tcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST(NetflowTcpCases, DefineThenWithdrawOverRealTcpSessions) {
  const std::map<std::string, std::size_t> variants = {
      {"input.pcap", 1},
      {"variant-v1-separate-messages.pcap", 0},
      {"variant-v2-separate-sets-same-msg.pcap", 0},
      {"variant-v3-same-set.pcap", 0},
      {"variant-v4-withdraw-then-define-same-set.pcap", 1},
      {"variant-v5-withdraw-all-same-set.pcap", 0},
      {"variant-v6-held-then-redefined.pcap", 1},
      {"variant-v7-withdraw-define-then-next-msg.pcap", 2},
      {"variant-v8-define-withdraw-then-next-msg.pcap", 0},
  };
  Daemon d;
  const int tcp_port = free_tcp_port();
  std::string cfg = d.config_with_plugins("netflow");
  cfg += "\n[plugin.netflow]\nlisten =\ntcp_listen = 127.0.0.1:" + std::to_string(tcp_port) +
         "\ndump = " + d.dir.file("dump.json") + "\n";
  d.start(cfg);

  std::map<int, std::string> variant_of_port;  // each variant is its own session (own source port)
  std::size_t messages = 0;
  for (const auto& [file, want] : variants) {
    const auto segments =
        capture_payloads(fixtures_dir() + "/cases/ipfix-tcp-define-then-withdraw/" + file, 6);
    ASSERT_FALSE(segments.empty()) << file;
    int fd = connect_tcp(tcp_port);
    ASSERT_GE(fd, 0) << d.proc->log();
    variant_of_port[local_port(fd)] = file;
    for (const auto& s : segments) {
      ASSERT_EQ(write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
      ++messages;
      usleep(2000);  // one segment at a time, as the capture has them
    }
    close(fd);
  }
  // Every message was decoded (10 in all) before the dump is read.
  d.scrape_until("flowd_netflow_packets_total{version=\"10\"}", static_cast<double>(messages));
  std::string m = d.scrape();
  EXPECT_EQ(metric_sum(m, "flowd_netflow_packets_total{version=\"10\"}"),
            static_cast<double>(messages))
      << m;
  // input, v1, v2, v3, v5, v6 and v8 each drop one data set for a withdrawn template.
  EXPECT_EQ(
      metric_sum(m,
                 "flowd_netflow_decode_errors_total{reason=\"withdrawn_template\",version=\"10\"}"),
      7)
      << m;
  EXPECT_EQ(d.stop(), 0);

  std::map<std::string, std::vector<nlohmann::json>> got;
  std::istringstream dump(read_file(d.dir.file("dump.json")));
  for (std::string line; std::getline(dump, line);) {
    auto j = nlohmann::json::parse(line);
    const std::string exporter = j["exporter"];
    const int port = std::stoi(exporter.substr(exporter.rfind(':') + 1));
    ASSERT_TRUE(variant_of_port.count(port)) << line;
    got[variant_of_port[port]].push_back(j);
  }
  for (const auto& [file, want] : variants) EXPECT_EQ(got[file].size(), want) << file;
  // The one record of input.pcap and v6 is m2's, read with m2's template (addresses in its order).
  for (const char* file : {"input.pcap", "variant-v6-held-then-redefined.pcap"}) {
    ASSERT_EQ(got[file].size(), 1u) << file;
    const auto& f = got[file][0]["fields"];
    EXPECT_EQ(f["destinationIPv4Address"], "192.0.2.2") << file;
    EXPECT_EQ(f["sourceIPv4Address"], "192.0.2.1") << file;
    EXPECT_EQ(f["octetDeltaCount"], 77) << file;
    EXPECT_FALSE(f.contains("packetDeltaCount")) << file;
  }
}

}  // namespace
}  // namespace flowd::test
