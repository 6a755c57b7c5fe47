// SPDX-License-Identifier: Apache-2.0
// The rule above all others, end to end: flowd never sends a datagram to an address it read from a
// router's export or from another host's firefly. The flows here run 127.0.0.2 <-> 127.0.0.3, both
// with a listener on the firefly port; the collector listens on 127.0.0.1. A local flow between the
// same addresses shows the listeners would have caught a firefly.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "daemon_fixture.hpp"
#include "ipfix_export.hpp"

namespace flowd::test {
namespace {

void send_udp(int port, const std::string& payload) {
  send_udp_payloads(port, {payload});
}

// The flow label of an experiment/activity, from `flowd label encode` ("label 65572 (0x10024):
// ...").
std::uint32_t label_of(const std::string& experiment, const std::string& activity) {
  std::string out, err;
  EXPECT_EQ(run_flowd({"label", "encode", experiment, activity}, out, err), 0) << err;
  EXPECT_EQ(out.rfind("label ", 0), 0u) << out;
  return static_cast<std::uint32_t>(std::stoul(out.substr(6)));
}

nlohmann::json body(const std::string& datagram) {
  return nlohmann::json::parse(datagram.substr(datagram.find('{')));
}

class OriginEndToEnd : public ::testing::Test {
 protected:
  OriginEndToEnd() : src(false, d.rx4.port(), "127.0.0.2"), dst(false, d.rx4.port(), "127.0.0.3") {}

  std::string config(const std::string& plugins, const std::string& udp_extra,
                     const std::string& sections) const {
    std::string cfg =
        d.config("collector = 127.0.0.1:" + std::to_string(collector.port()) + "\n" + udp_extra);
    cfg.replace(cfg.find("plugins = np_api"), 16, "plugins = np_api, " + plugins);
    return cfg + sections;
  }

  // Nothing reached the flow's addresses, nor 127.0.0.1 on the firefly port.
  void expect_nothing_at_the_flows_addresses() {
    EXPECT_FALSE(dst.receive(300ms)) << "a datagram reached the flow's destination";
    EXPECT_FALSE(src.receive(10ms)) << "a datagram reached the flow's source";
    EXPECT_FALSE(d.rx4.receive(10ms));
  }

  // A local flow between the same addresses: its firefly does reach the destination listener.
  void expect_local_flow_reaches_its_peer() {
    write_pipe(d.pipe(), "start udp 127.0.0.2 40009 127.0.0.3 5201 atlas Debug\n");
    auto m = dst.receive();
    ASSERT_TRUE(m) << d.proc->log();
    EXPECT_EQ(body(*m)["flow-id"]["src-port"], 40009);
    auto copy = collector.receive();
    ASSERT_TRUE(copy);
    EXPECT_EQ(*copy, *m);
  }

  Daemon d;
  UdpReceiver src, dst, collector;
};

// An IPFIX export of Scitags-labelled traffic between 127.0.0.2 and 127.0.0.3 (both directions).
class ObservedEndToEnd : public OriginEndToEnd, public ::testing::WithParamInterface<bool> {};

TEST_P(ObservedEndToEnd, ExportedFlowsNeverGoToTheirAddresses) {
  const bool forward = GetParam();
  int nf_port = free_udp_port();
  d.start(config("netflow", forward ? "forward_observed = yes\n" : "",
                 "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
                     "\ntcp_listen =\nidle_timeout = 1\n"));
  const std::uint32_t label = label_of("atlas", "Debug");
  send_udp(nf_port, ipfix_export({{"127.0.0.2", "127.0.0.3", 40000, 5201, 17, label},
                                  {"127.0.0.3", "127.0.0.2", 5201, 40000, 17, label | 0x3}}));
  const std::string events =
      "flowd_flow_events_total{origin=\"observed\",plugin=\"netflow\",state=\"";
  std::string m = d.scrape_until(events + "start\"}", 2);
  ASSERT_EQ(metric_value(m, events + "start\"}"), 2) << d.proc->log();
  m = d.scrape_until(events + "end\"}", 2);  // idle_timeout
  ASSERT_EQ(metric_value(m, events + "end\"}"), 2) << d.proc->log();

  if (forward) {
    auto got = collector.receive_many(4);
    ASSERT_EQ(got.size(), 4u) << d.proc->log();
    for (const auto& g : got) {
      auto j = body(g);
      // As the router exported them: flowd puts none of its own addresses into an observed flow.
      EXPECT_TRUE(j["flow-id"]["src-ip"] == "127.0.0.2" || j["flow-id"]["src-ip"] == "127.0.0.3")
          << g;
      EXPECT_EQ(j["context"]["experiment-id"], 2);
      EXPECT_EQ(j["context"]["activity-id"], 9);
    }
  } else {
    EXPECT_FALSE(collector.receive(300ms)) << "forward_observed = no: the collector gets nothing";
  }
  expect_nothing_at_the_flows_addresses();
  m = d.scrape();
  EXPECT_EQ(metric_value(
                m, "flowd_fireflies_suppressed_total{origin=\"observed\",reason=\"flow_address\"}"),
            4);
  EXPECT_EQ(
      metric_value(
          m, "flowd_fireflies_suppressed_total{origin=\"observed\",reason=\"forward_observed\"}"),
      forward ? 0 : 4);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"flow\"}"), 0);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"collector\"}"),
            forward ? 4 : 0);
  EXPECT_EQ(
      metric_value(
          m, "flowd_active_flows{activity=\"Debug\",experiment=\"atlas\",origin=\"observed\"}"),
      0);
  expect_local_flow_reaches_its_peer();
  EXPECT_EQ(d.stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(ForwardObserved, ObservedEndToEnd, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "yes" : "no"; });

TEST_F(OriginEndToEnd, ReceivedFirefliesAreRelayedToTheCollectorOnly) {
  int listen_port = free_udp_port();
  d.start(
      config("firefly", "",
             "\n[plugin.firefly]\nhost = 127.0.0.1\nport = " + std::to_string(listen_port) + "\n"));
  auto firefly = [](const char* state) {
    return std::string(
               "<134>1 - other.example flowd - firefly-json - {\"version\": 1, \"flow-lifecycle\": "
               "{\"state\": \"") +
           state +
           "\"}, \"flow-id\": {\"afi\": \"ipv4\", \"src-ip\": \"127.0.0.2\", \"dst-ip\": "
           "\"127.0.0.3\", "
           "\"protocol\": \"udp\", \"src-port\": 40000, \"dst-port\": 5201}, \"context\": "
           "{\"experiment-id\": 2, "
           "\"activity-id\": 9, \"application\": \"elsewhere\"}}";
  };
  send_udp(listen_port, firefly("start"));
  send_udp(listen_port, firefly("end"));
  auto got = collector.receive_many(2);
  ASSERT_EQ(got.size(), 2u) << d.proc->log();
  EXPECT_EQ(body(got[0]), body(firefly("start"))) << "relayed unchanged";
  EXPECT_EQ(body(got[1]), body(firefly("end")));
  expect_nothing_at_the_flows_addresses();
  std::string m = d.scrape();
  EXPECT_EQ(metric_value(
                m, "flowd_flow_events_total{origin=\"remote\",plugin=\"firefly\",state=\"start\"}"),
            1);
  EXPECT_EQ(metric_value(
                m, "flowd_fireflies_suppressed_total{origin=\"remote\",reason=\"flow_address\"}"),
            2);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"flow\"}"), 0);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"collector\"}"), 2);
  expect_local_flow_reaches_its_peer();
  EXPECT_EQ(d.stop(), 0);
}

TEST(OriginConfig, ForwardObservedIsAKeyThatNeedsACollector) {
  TempDir dir;
  const std::string head =
      "[flowd]\nplugins = netflow\nbackends = udp_firefly\nwork_dir = " + dir.file("cache") +
      "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(free_udp_port()) +
      "\ntcp_listen =\n[backend.udp_firefly]\n";
  dir.write("a.cfg", head + "collector = 127.0.0.1\nforward_observed = yes\n");
  dir.write("b.cfg", head + "forward_observed = yes\n");
  std::string out, err;
  EXPECT_EQ(run_flowd({"--check-config", "-c", dir.file("a.cfg")}, out, err), 0) << err;
  ASSERT_EQ(run_flowd({"--print-config", "-c", dir.file("a.cfg")}, out, err), 0) << err;
  EXPECT_NE(out.find("forward_observed = yes"), std::string::npos) << out;
  // Only the backend knows the two keys belong together: flowd refuses to start, as a config error.
  EXPECT_EQ(run_flowd({"-c", dir.file("b.cfg")}, out, err), 2);
  EXPECT_NE((out + err).find("forward_observed: needs collector"), std::string::npos) << out << err;
}

}  // namespace
}  // namespace flowd::test
