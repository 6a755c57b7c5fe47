// SPDX-License-Identifier: Apache-2.0
// privileged: fixtures/observed/random-labels-ipfix.pcap replayed to the real flowd (netflow
// plugin, udp_firefly with a collector and forward_observed = yes, prometheus) inside a network
// namespace of the test's own, whose only way out is a veth to a second namespace routing
// 2001:db8::/32 and 192.0.2.0/24. tcpdump there proves that not one datagram went towards an
// address read from the export, while the collector got the fireflies of the three flows whose
// labels happen to be tags.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "daemon_fixture.hpp"
#include "netns_scope.hpp"

namespace flowd::test {
namespace {

TEST(ObservedNetns, NothingIsSentTowardsAddressesReadFromAnExport) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for network namespaces";
  NetnsPair net;
  TempDir dir;
  std::string out;
  // Every flow and exporter address of the fixture leaves namespace a through the veth.
  ASSERT_EQ(net.exec(net.a,
                     "ip -6 route add 2001:db8::/32 via " + net.addr_b +
                         " && ip addr add 198.18.0.1/24 dev " + net.veth_a +
                         " && ip route add 192.0.2.0/24 via 198.18.0.2",
                     out),
            0)
      << out;
  ASSERT_EQ(net.exec(net.b, "ip addr add 198.18.0.2/24 dev " + net.veth_b, out), 0) << out;
  // tcpdump in b: anything towards the documentation prefixes.
  Tcpdump capture(net.b, net.veth_b, "ip6 net 2001:db8::/32 or net 192.0.2.0/24",
                  dir.file("cap.pcap"));

  std::unique_ptr<UdpReceiver> collector;
  {
    NetnsScope in(net.a);
    collector = std::make_unique<UdpReceiver>(false, 0, "127.0.0.1");
  }
  const int nf_port = 20555, prom_port = 9978;
  dir.write("flowd.cfg",
            "[flowd]\nplugins = netflow\nbackends = udp_firefly, prometheus\nwork_dir = " +
                dir.file("cache") +
                "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
                "\ntcp_listen =\n[backend.udp_firefly]\ncollector = 127.0.0.1:" +
                std::to_string(collector->port()) + "\nforward_observed = yes\n" +
                "[backend.prometheus]\nlisten = 127.0.0.1:" + std::to_string(prom_port) + "\n");
  NotifySocket notify(dir.file("notify"));
  FlowdProcess proc({"-c", dir.file("flowd.cfg")}, dir.file("flowd.log"), notify.path(), {},
                    {"/usr/sbin/ip", "netns", "exec", net.a});
  ASSERT_TRUE(notify.wait_for("READY=1")) << proc.log();
  {
    NetnsScope in(net.a);
    send_udp_payloads(nf_port,
                      capture_payloads(fixtures_dir() + "/observed/random-labels-ipfix.pcap", 17));
  }
  auto got = collector->receive_many(3);
  std::string m;
  for (int i = 0; i < 200; ++i) {
    net.exec(net.a, "curl -s http://127.0.0.1:" + std::to_string(prom_port) + "/metrics", m);
    if (metric_sum(m, "flowd_netflow_records_total{version=\"10\"}").value_or(0) >= 2400) break;
    usleep(20000);
  }
  EXPECT_EQ(metric_sum(m, "flowd_netflow_records_total{version=\"10\"}"), 2400) << proc.log();
  EXPECT_EQ(metric_value(m, "flowd_observed_labels_total{result=\"tag\"}"), 3);
  // The collector (the only destination observed flows may have) got exactly the three starts.
  ASSERT_EQ(got.size(), 3u) << proc.log();
  for (const auto& f : got) {
    auto j = nlohmann::json::parse(f.substr(f.find('{')));
    EXPECT_EQ(j["flow-lifecycle"]["state"], "start");
    EXPECT_EQ(j["flow-id"]["dst-ip"].get<std::string>().rfind("2001:db8:2::", 0), 0u) << f;
  }
  proc.signal(SIGTERM);
  EXPECT_EQ(proc.wait(5s), 0);

  // A positive control: one datagram from a towards 2001:db8::99 is seen by the capture, so the
  // capture would have seen flowd's.
  ASSERT_EQ(
      net.exec(net.a,
               "python3 -c \"import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
               "s.sendto(b\\\"control\\\", (\\\"2001:db8::99\\\", 9))\"",
               out),
      0)
      << out;
  usleep(300000);
  capture.stop();
  run_shell("tcpdump -nr " + dir.file("cap.pcap") + " 2>/dev/null", "", out);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << "expected only the control datagram:\n"
                                                         << out;
  EXPECT_NE(out.find("2001:db8::99.9"), std::string::npos) << out;
}

}  // namespace
}  // namespace flowd::test
