// SPDX-License-Identifier: Apache-2.0
// privileged: real IPv6 TCP traffic between two namespaces of the test's own, with the kernel's
// automatic flow labels, exported live two ways: sampled by pmacctd's sfprobe (sFlow carries each
// packet's own header) into one collecting flowd (sflow plugin), and as IPFIX with each packet's
// own label in element 31 (label_exporter.hpp, as nProbe and Cisco FNF export it) into another
// (netflow plugin). Both send fireflies to a collector with forward_observed = yes. One flow is
// marked by a third flowd's own ebpf marker on the sending side. In each collector only that flow,
// and any other whose kernel-chosen label happens to spell a registered pair (computed here from
// the captured labels), become tags; the marked one with its experiment/activity and its bytes; and
// not one datagram goes from flowd towards the flows' addresses (captured on the other end of the
// veth).
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "daemon_fixture.hpp"
#include "flowd/scitags_label.hpp"
#include "label_exporter.hpp"
#include "netns_scope.hpp"

namespace flowd::test {
namespace {

using Tuple = std::tuple<std::string, std::string, int, int>;  // src, dst, sport, dport

std::set<std::pair<unsigned, unsigned>> registered_pairs() {
  auto j = nlohmann::json::parse(read_file(fixtures_dir() + "/registry/api.json"));
  std::set<std::pair<unsigned, unsigned>> pairs;
  for (const auto& e : j["experiments"])
    for (const auto& a : e["activities"])
      pairs.insert({e["expId"].get<unsigned>(), a["activityId"].get<unsigned>()});
  return pairs;
}

struct Flowd {
  TempDir dir;
  std::unique_ptr<NotifySocket> notify;
  std::unique_ptr<FlowdProcess> proc;
  void start(const std::string& ns, const std::string& cfg) {
    dir.write("flowd.cfg", cfg);
    notify = std::make_unique<NotifySocket>(dir.file("notify"));
    proc = std::make_unique<FlowdProcess>(
        std::vector<std::string>{"-c", dir.file("flowd.cfg")}, dir.file("flowd.log"),
        notify->path(), std::vector<std::string>{},
        std::vector<std::string>{"/usr/sbin/ip", "netns", "exec", ns});
    ASSERT_TRUE(notify->wait_for("READY=1")) << proc->log();
  }
  int stop() {
    proc->signal(SIGTERM);
    return proc->wait(5s).value_or(-1);
  }
};

TEST(ObservedLive, SfprobeAndIpfixOfRealTrafficTagOnlyTheMarkedFlowAndRegisteredAccidents) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for network namespaces and BPF";
  std::string out;
  if (run_shell("command -v pmacctd && command -v iperf3 && command -v tshark", "", out) != 0)
    GTEST_SKIP() << "pmacctd, iperf3 or tshark missing (Debian packages pmacct, iperf3, tshark)";
  NetnsPair net;
  TempDir dir;
  const int sflow_port = 26343, ipfix_port = 24739, marker_prom = 9981;
  const int prom[2] = {9982, 9983};  // sflow observer, ipfix observer

  // Everything that leaves a through the veth is captured in b.
  Tcpdump capture(net.b, net.veth_b, "ip6", dir.file("cap.pcap"));

  std::unique_ptr<UdpReceiver> collector[2];
  {
    NetnsScope in(net.a);
    for (auto& c : collector) c = std::make_unique<UdpReceiver>(false, 0, "127.0.0.1");
  }
  Flowd marker, observer[2];
  marker.start(net.a,
               "[flowd]\nplugins = np_api\nbackends = ebpf, prometheus\nwork_dir = " +
                   marker.dir.file("cache") + "\n[plugin.np_api]\npath = " + marker.dir.file("np") +
                   "\n[backend.ebpf]\ninterfaces = " + net.veth_a +
                   "\n[backend.prometheus]\nlisten = 127.0.0.1:" + std::to_string(marker_prom) +
                   "\n");
  const std::string plugin[2] = {"sflow", "netflow"};
  const std::string listen[2] = {"listen = 127.0.0.1:" + std::to_string(sflow_port),
                                 "tcp_listen =\nlisten = 127.0.0.1:" + std::to_string(ipfix_port)};
  for (int i = 0; i < 2; ++i)
    observer[i].start(net.a, "[flowd]\nplugins = " + plugin[i] +
                                 "\nbackends = udp_firefly, prometheus\nwork_dir = " +
                                 observer[i].dir.file("cache") + "\n[plugin." + plugin[i] + "]\n" +
                                 listen[i] +
                                 "\nidle_timeout = 30\n[backend.udp_firefly]\ncollector = "
                                 "127.0.0.1:" +
                                 std::to_string(collector[i]->port()) +
                                 "\nforward_observed = yes\n[backend.prometheus]\nlisten = "
                                 "127.0.0.1:" +
                                 std::to_string(prom[i]) + "\n");
  if (HasFatalFailure()) return;

  // pmacctd samples every packet on a's side of the veth (after the marker's tc egress program);
  // the IPFIX exporter reads the same packets.
  dir.write("pmacctd.conf",
            "daemonize: false\npcap_interface: " + net.veth_a +
                "\nplugins: sfprobe\nsfprobe_receiver: 127.0.0.1:" + std::to_string(sflow_port) +
                "\nsfprobe_agentip: 127.0.0.1\nsampling_rate: 1\n");
  run_shell("ip netns exec " + net.a + " pmacctd -f " + dir.file("pmacctd.conf") + " > " +
                dir.file("pmacctd.log") + " 2>&1 & echo $!",
            "", out);
  const int pmacctd_pid = std::stoi(out);
  LabelExporter ipfix(net.a, net.veth_a, ipfix_port);
  usleep(1500000);  // pmacctd opens its capture

  // The marked flow: np_api line first, so every packet of it carries the tag.
  write_pipe(marker.dir.file("np"),
             "start tcp " + net.addr_a + " 40100 " + net.addr_b + " 5201 atlas Debug\n");
  for (int i = 0; i < 200; ++i) {
    net.exec(net.a, "curl -s http://127.0.0.1:" + std::to_string(marker_prom) + "/metrics", out);
    if (metric_value(out, "flowd_marker_flows") == 1) break;
    usleep(10000);
  }
  ASSERT_EQ(net.exec(net.b, "iperf3 -s -1 -D -p 5201 && iperf3 -s -1 -D -p 5202", out), 0) << out;
  usleep(300000);
  ASSERT_EQ(net.exec(net.a, "iperf3 -6 -c " + net.addr_b + " -p 5201 --cport 40100 -n 128K", out),
            0)
      << out;
  ASSERT_EQ(net.exec(net.a, "iperf3 -6 -c " + net.addr_b + " -p 5202 --cport 40200 -n 128K", out),
            0)
      << out;
  usleep(2000000);  // sfprobe's last datagrams
  kill(pmacctd_pid, SIGINT);
  run_shell("while kill -0 " + std::to_string(pmacctd_pid) + " 2>/dev/null; do sleep 0.05; done",
            "", out);
  EXPECT_GT(ipfix.stop(), 6u);
  usleep(300000);

  std::string m[2];
  std::vector<std::string> fireflies[2];
  for (int i = 0; i < 2; ++i) {
    net.exec(net.a, "curl -s http://127.0.0.1:" + std::to_string(prom[i]) + "/metrics", m[i]);
    fireflies[i] = collector[i]->receive_many(64, 2s);
  }
  // sampling_rate 1: one sample per packet pmacctd saw. How many packets that is depends on the
  // veth's segmentation offloads (one 64 KiB segment or 45 packets), so the bound is what pmacctd
  // itself counted, less a few a busy machine may lose between pmacctd and flowd.
  const std::string pmacctd_log = read_file(dir.file("pmacctd.log"));
  const auto received_at = pmacctd_log.find("received_packets=");
  ASSERT_NE(received_at, std::string::npos) << pmacctd_log;
  const long received = std::stol(pmacctd_log.substr(received_at + 17));
  EXPECT_GT(received, 20) << pmacctd_log;
  EXPECT_GE(metric_sum(m[0], "flowd_sflow_samples_total").value_or(0), received * 9 / 10)
      << pmacctd_log << observer[0].proc->log();
  EXPECT_GT(metric_sum(m[1], "flowd_netflow_records_total{version=\"10\"}").value_or(0), 6)
      << observer[1].proc->log();
  for (auto& o : observer) EXPECT_EQ(o.stop(), 0);
  EXPECT_EQ(marker.stop(), 0);
  usleep(300000);
  capture.stop();

  // The labels each direction of each TCP connection carried on the wire.
  run_shell("tshark -r " + dir.file("cap.pcap") +
                " -Y tcp -T fields -E separator=';' -e ipv6.src -e ipv6.dst -e tcp.srcport -e "
                "tcp.dstport -e ipv6.flow "
                "2>/dev/null",
            "", out);
  std::map<Tuple, std::set<std::uint32_t>> labels;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string x; std::getline(ls, x, ';');) f.push_back(x);
    if (f.size() != 5) continue;
    labels[{f[0], f[1], std::stoi(f[2]), std::stoi(f[3])}].insert(
        static_cast<std::uint32_t>(std::stoul(f[4], nullptr, 16)));
  }
  ASSERT_GE(labels.size(), 6u) << out;  // 2 data + 2 control connections, both ways
  const auto pairs = registered_pairs();
  std::set<std::pair<int, int>> want;  // (sport, dport) of the directions that must become tags
  for (const auto& [t, ls] : labels) {
    if (ls.size() != 1) continue;  // a label that changed is never a tag
    const auto tag = decode_label(*ls.begin());
    if ((*ls.begin() & kLabelSemanticMask) != 0 && pairs.count({tag.experiment, tag.activity}))
      want.insert({std::get<2>(t), std::get<3>(t)});
  }
  ASSERT_TRUE(want.count({40100, 5201})) << "the marked flow carries atlas/Debug on the wire";

  const char* source[2] = {"sflow", "ipfix"};
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(source[i]);
    std::set<std::pair<int, int>> started;
    for (const auto& f : fireflies[i]) {
      auto j = nlohmann::json::parse(f.substr(f.find('{')));
      if (j["flow-lifecycle"]["state"] != "start") continue;
      const std::pair<int, int> ports{j["flow-id"]["src-port"].get<int>(),
                                      j["flow-id"]["dst-port"].get<int>()};
      started.insert(ports);
      if (ports == std::pair<int, int>{40100, 5201}) {
        EXPECT_EQ(j["context"]["experiment-id"], 2);
        EXPECT_EQ(j["context"]["activity-id"], 9);
      }
    }
    EXPECT_EQ(started, want) << observer[i].proc->log();
    // Each iperf3 run moves 128 KiB; pmacctd may miss a few packets of a burst, so the bound is
    // lower.
    const std::string series =
        std::string("flowd_observed_bytes_total{activity=\"%\",experiment=\"%\",source=\"") +
        source[i] + "\"}";
    auto with = [&](const std::string& exp, const std::string& act) {
      std::string s = series;
      s.replace(s.find('%'), 1, act);
      s.replace(s.find('%'), 1, exp);
      return s;
    };
    EXPECT_GT(metric_value(m[i], with("atlas", "Debug")).value_or(0), 100000) << m[i];
    EXPECT_GT(metric_value(m[i], with("none", "none")).value_or(0), 100000) << m[i];
  }
  // Nothing but the iperf3 connections went from a to b: no datagram towards a flow's address.
  run_shell("tshark -r " + dir.file("cap.pcap") + " -Y 'udp && ipv6.src == " + net.addr_a +
                "' 2>/dev/null | wc -l",
            "", out);
  EXPECT_EQ(std::stoi(out), 0);
}

}  // namespace
}  // namespace flowd::test
