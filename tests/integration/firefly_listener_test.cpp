// SPDX-License-Identifier: Apache-2.0
// The firefly plugin on real sockets: what our udp_firefly sends comes back through our listener
// unchanged (IPv4 and IPv6, relayed to a collector), senders outside `allow` are refused, and a
// flood of malformed datagrams is counted while every good firefly among them is relayed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>

#include "daemon_fixture.hpp"
#include "firefly_schema.hpp"

namespace flowd::test {
namespace {

const char* kReasons[] = {"oversized", "truncated", "not_utf8", "header", "json",
                          "missing",   "type",      "range",    "value",  "not_allowed"};

// flowd with np_api and the firefly listener on `listen_port`; udp_firefly sends the flows'
// fireflies to that same port (so to our own listener) and copies everything to `collector`.
// `collectors`: udp_firefly's collector list as written.
std::string relay_config(const Daemon& d, int listen_port, const std::string& collectors,
                         const std::string& firefly_extra = "") {
  return "[flowd]\nplugins = np_api, firefly\nbackends = udp_firefly, prometheus\nwork_dir = " +
         d.dir.file("cache") + "\n\n[plugin.np_api]\npath = " + d.pipe() +
         "\n\n[plugin.firefly]\nhost = ::\nport = " + std::to_string(listen_port) +
         "\nrcvbuf = 67108864\n" + firefly_extra +
         "\n[backend.udp_firefly]\nport = " + std::to_string(listen_port) +
         "\ncollector = " + collectors +
         "\n\n[backend.prometheus]\nlisten = 127.0.0.1:" + std::to_string(d.prom_port) + "\n";
}

std::string relay_config(const Daemon& d, int listen_port, int collector_port,
                         const std::string& firefly_extra = "") {
  return relay_config(d, listen_port, "127.0.0.1:" + std::to_string(collector_port), firefly_extra);
}

std::string json_part(const std::string& datagram) {
  auto at = datagram.find(" firefly-json - ");
  return at == std::string::npos ? datagram : datagram.substr(at + 16);
}

class Sender {
 public:
  explicit Sender(bool v6 = false)
      : v6_(v6), fd_(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0)) {}
  ~Sender() { ::close(fd_); }
  void send(int port, const std::string& data) const {
    ssize_t n;
    if (v6_) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = htons(static_cast<std::uint16_t>(port));
      a.sin6_addr = in6addr_loopback;
      n = ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(port));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      n = ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    ASSERT_EQ(n, static_cast<ssize_t>(data.size())) << std::strerror(errno);
  }

 private:
  bool v6_;
  int fd_;
};

double sum_rejected(const std::string& m) {
  double sum = 0;
  for (auto* r : kReasons)
    sum += metric_value(m, std::string("flowd_firefly_rejected_total{reason=\"") + r + "\"}")
               .value_or(0);
  return sum;
}

// Waits until the listener has read `count` datagrams and, since a datagram is counted as received
// before it is parsed, until `rejected` of them were counted as rejected; returns the last scrape.
std::string wait_received(const Daemon& d, double count, double rejected = 0) {
  std::string m;
  for (int i = 0; i < 200; ++i) {
    m = d.scrape();
    if (metric_value(m, "flowd_firefly_received_total").value_or(0) >= count &&
        sum_rejected(m) >= rejected)
      break;
    usleep(50000);
  }
  return m;
}

TEST(FireflyListener, OurFirefliesComeBackUnchangedIPv4AndIPv6) {
  Daemon d;
  UdpReceiver collector;
  int port = free_udp_port();
  d.start(relay_config(d, port, collector.port()));
  write_pipe(d.pipe(), "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n");
  write_pipe(d.pipe(), "end udp ::1 40000 ::1 5001 cms Cache\n");
  // Each flow: udp_firefly's copy, then the relay of what our listener received from udp_firefly.
  auto got = collector.receive_many(4);
  ASSERT_EQ(got.size(), 4u) << d.proc->log();
  std::map<std::string, int> bodies;
  for (const auto& g : got) ++bodies[json_part(g)];
  ASSERT_EQ(bodies.size(), 2u) << got[0] << "\n" << got[1] << "\n" << got[2] << "\n" << got[3];
  std::set<std::string> afis;
  for (const auto& [body, n] : bodies) {
    EXPECT_EQ(n, 2) << body;  // relayed byte for byte
    auto j = nlohmann::json::parse(body);
    afis.insert(j["flow-id"]["afi"]);
  }
  EXPECT_EQ(afis, (std::set<std::string>{"ipv4", "ipv6"}));
  EXPECT_EQ(firefly_schema_errors(got), "");
  std::string m = d.scrape_until("flowd_fireflies_sent_total{destination=\"collector\"}", 4);
  EXPECT_EQ(metric_value(m, "flowd_firefly_received_total"), 2);
  EXPECT_EQ(sum_rejected(m), 0);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"collector\"}"), 4);
  EXPECT_EQ(d.stop(), 0);
}

// Issue 14: `collector = A, B` (a global and a regional collector). Each gets every firefly: this
// host's own (np_api's flow, to the peer and both collectors) and every relayed one (the firefly
// plugin -> udp_firefly), and each is counted under its own name.
TEST(FireflyListener, TwoCollectorsEachGetEveryFireflyAndEveryRelayedOne) {
  Daemon d;
  UdpReceiver global, regional(false, 0, "127.0.0.2");
  int port = free_udp_port();
  const std::string a = "127.0.0.1:" + std::to_string(global.port());
  const std::string b = "127.0.0.2:" + std::to_string(regional.port());
  d.start(relay_config(d, port, a + ", " + b));
  // Our own flow: a copy to each collector; the peer is our listener, which relays it to each.
  write_pipe(d.pipe(), "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n");
  // Another host's firefly, straight to the listener: relayed to each.
  Sender s4;
  const std::string other = read_file(fixtures_dir() + "/firefly/flowd-go-sample.firefly");
  s4.send(port, other);
  for (auto* c : {&global, &regional}) {
    auto got = c->receive_many(3);
    ASSERT_EQ(got.size(), 3u) << d.proc->log();
    std::map<std::string, int> bodies;
    for (const auto& g : got) ++bodies[json_part(g)];
    EXPECT_EQ(bodies.size(), 2u);
    EXPECT_EQ(bodies[json_part(other)], 1) << "the other host's firefly, relayed once";
    EXPECT_FALSE(c->receive(300ms)) << "nothing more";
  }
  std::string m = d.scrape_until("flowd_fireflies_sent_total{destination=\"collector\"}", 6);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"collector\"}"), 6);
  EXPECT_EQ(metric_value(m, "flowd_collector_fireflies_sent_total{collector=\"" + a + "\"}"), 3);
  EXPECT_EQ(metric_value(m, "flowd_collector_fireflies_sent_total{collector=\"" + b + "\"}"), 3);
  EXPECT_EQ(metric_value(m, "flowd_collector_send_errors_total{collector=\"" + b + "\"}"), 0);
  EXPECT_EQ(metric_value(m, "flowd_collector_resolve_failures_total{collector=\"" + b + "\"}"), 0);
  EXPECT_EQ(d.stop(), 0);
}

// Issue 14 (found by a fresh user): collectors were told apart as text, so `localhost, LOCALHOST`
// or an address and its IPv4-mapped form each got every firefly twice, and `a,,b` passed.
TEST(FireflyListener, DuplicateOrEmptyCollectorsAreRefusedAtCheck) {
  Daemon d;
  std::string out, err;
  const std::pair<std::string, std::string> refused[] = {
      {"localhost:10600, LOCALHOST:10600",
       "'LOCALHOST:10600' is listed twice (as 'localhost:10600')"},
      {"127.0.0.2:10600, [::ffff:127.0.0.2]:10600", "is listed twice (as '127.0.0.2:10600')"},
      {"[2001:db8::1], [2001:db8:0::1]", "is listed twice"},
      {"a.example.org,,b.example.org", "an empty item"},
      {"a.example.org, , b.example.org", "an empty item"},
      {", a.example.org", "an empty item"},
      {"a.example.org,", "an empty item"},
  };
  for (const auto& [list, says] : refused) {
    d.dir.write("c.cfg", d.config("collector = " + list + "\n"));
    EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("c.cfg")}, out, err), 2) << list;
    EXPECT_NE(err.find("[backend.udp_firefly] collector"), std::string::npos) << err;
    EXPECT_NE(err.find(says), std::string::npos) << list << ": " << err;
  }
  // Different ports are different collectors; a comma ending a line continues the list.
  for (const char* ok : {"localhost:10600, LOCALHOST:10601", "a.example.org,\n  b.example.org"}) {
    d.dir.write("c.cfg", d.config(std::string("collector = ") + ok + "\n"));
    EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("c.cfg")}, out, err), 0)
        << ok << ": " << err;
  }
}

TEST(FireflyListener, FixturesFromOtherSendersAreRelayedWithTheirFields) {
  Daemon d;
  UdpReceiver collector;
  int port = free_udp_port();
  d.start(relay_config(d, port, collector.port()));
  Sender s4;
  Sender s6(true);
  std::vector<std::string> sent;
  for (const char* f :
       {"flowd-go-sample.firefly", "flowd-go-end.firefly", "flowd-py-start-tcp-ipv6.txt"}) {
    sent.push_back(read_file(fixtures_dir() + "/firefly/" + f));
    (sent.size() % 2 ? s4 : s6).send(port, sent.back());
  }
  // XRootD style: "-" timestamp, compact JSON, usage and netlink sections, an ongoing flowd-go one.
  sent.push_back(
      read_file(std::string(FLOWD_SOURCE_DIR) + "/tests/fuzz/corpus/firefly_fuzz/xrootd.firefly"));
  s4.send(port, sent.back());
  sent.push_back(
      R"(<134>1  host flowd-go - firefly-json - {"version":1,"flow-lifecycle":{"state":"ongoing","current-time":)"
      R"("2025-02-06T13:21:31.893064962+01:00","start-time":"2025-02-06T13:21:30.893064962+01:00"},"flow-id":)"
      R"({"afi":"ipv4","src-ip":"192.0.2.1","dst-ip":"192.0.2.2","protocol":"tcp","src-port":2345,"dst-port":)"
      R"(5777},"context":{"experiment-id":2,"activity-id":9,"application":"flowd-go-v2.4.2"},"netlink":)"
      R"({"tcpInfo":{"rtt":120}},"usage":{"received":1,"sent":2}})");
  s4.send(port, sent.back());
  auto got = collector.receive_many(sent.size());
  ASSERT_EQ(got.size(), sent.size()) << d.proc->log();
  std::string m = d.scrape();
  EXPECT_EQ(metric_value(
                m, "flowd_flow_events_total{origin=\"remote\",plugin=\"firefly\",state=\"start\"}"),
            2);
  EXPECT_EQ(metric_value(
                m, "flowd_flow_events_total{origin=\"remote\",plugin=\"firefly\",state=\"end\"}"),
            2);
  EXPECT_EQ(
      metric_value(
          m, "flowd_flow_events_total{origin=\"remote\",plugin=\"firefly\",state=\"ongoing\"}"),
      1);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    // Another sender's application, times and formatting survive the relay.
    EXPECT_EQ(nlohmann::json::parse(json_part(got[i])), nlohmann::json::parse(json_part(sent[i])));
    EXPECT_TRUE(got[i].starts_with("<134>1 ")) << got[i];
  }
  EXPECT_EQ(d.stop(), 0);
}

// `flowd -d` promises one log line per flow event, naming the plugin, the state, the 5-tuple and
// the experiment/activity: the firefly plugin's events too.
TEST(FireflyListener, DebugLogsOneLinePerEvent) {
  Daemon d;
  UdpReceiver collector;
  int port = free_udp_port();
  d.start(relay_config(d, port, collector.port()), "flowd.cfg", {}, {}, {"-d"});
  Sender s4;
  s4.send(
      port,
      R"(<134>1  host flowd-go - firefly-json - {"version":1,"flow-lifecycle":{"state":"ongoing",)"
      R"("current-time":"2025-02-06T13:21:31.893064962+01:00"},"flow-id":{"afi":"ipv4","src-ip":)"
      R"("192.0.2.1","dst-ip":"192.0.2.2","protocol":"tcp","src-port":2345,"dst-port":5777},)"
      R"("context":{"experiment-id":2,"activity-id":9,"application":"flowd-go-v2.4.2"}})");
  ASSERT_EQ(collector.receive_many(1).size(), 1u) << d.proc->log();
  const std::string line =
      "firefly ongoing tcp 192.0.2.1:2345 -> 192.0.2.2:5777 exp 2 act 9 (remote)";
  std::string log = d.proc->log();
  for (int i = 0; i < 500 && log.find(line) == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
    log = d.proc->log();
  }
  EXPECT_NE(log.find(line), std::string::npos) << log;
  std::size_t lines = 0;
  for (auto at = log.find("-> 192.0.2.2:5777"); at != std::string::npos;
       at = log.find("-> 192.0.2.2:5777", at + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << log;
  EXPECT_EQ(d.stop(), 0);
}

TEST(FireflyListener, SendersOutsideAllowAreCountedAndDropped) {
  Daemon d;
  UdpReceiver collector;
  int port = free_udp_port();
  d.start(relay_config(d, port, collector.port(), "allow = 198.18.0.0/15, ::1\n"));
  std::string good = read_file(fixtures_dir() + "/firefly/flowd-py-start-tcp-ipv4.txt");
  Sender(false).send(port, good);  // 127.0.0.1: not allowed
  Sender(true).send(port, good);   // ::1: allowed
  auto got = collector.receive_many(2, 1s);
  EXPECT_EQ(got.size(), 1u);
  std::string m = wait_received(d, 2, 1);
  EXPECT_EQ(metric_value(m, "flowd_firefly_rejected_total{reason=\"not_allowed\"}"), 1);
  EXPECT_NE(d.proc->log().find("127.0.0.1"), std::string::npos) << "the refused sender is logged";
  EXPECT_EQ(d.stop(), 0);
}

// A bad datagram of kind `k` (cycling through every reason the parser has).
std::string bad_datagram(int k, std::mt19937& rng, const std::string& good) {
  switch (k % 12) {
    case 0:
      return good.substr(0, good.size() / 2);  // truncated
    case 1:
      return good.substr(0, 60) + "\xc3\x28" + good.substr(60);  // not UTF-8
    case 2:
      return "GET / HTTP/1.1\r\n\r\n";  // header
    case 3:
      return "<134>1 - h flowd - firefly-json - {\"version\": 1,,}";  // json
    case 4:
      return "{\"version\": 1}";  // missing
    case 5:
      return std::regex_replace(good, std::regex("\"src-port\": \\d+"),
                                "\"src-port\": \"x\"");  // type
    case 6:
      return std::regex_replace(good, std::regex("\"dst-port\": \\d+"),
                                "\"dst-port\": 99999");  // range
    case 7:
      return std::regex_replace(good, std::regex("\"tcp\""), "\"icmp\"");  // value
    case 8:
      return std::string(2000, '{');  // oversized (max 1024)
    case 9:
      return "";  // empty: header
    case 10: {    // random bytes
      std::string r(1 + rng() % 300, '\0');
      for (auto& c : r) c = static_cast<char>(rng());
      r[0] = '<';
      return r;
    }
    default:
      return good + "}";  // json (trailing)
  }
}

TEST(FireflyListener, TenThousandMalformedAmongGoodOnes) {
  Daemon d;
  UdpReceiver collector;
  int port = free_udp_port();
  d.start(relay_config(d, port, collector.port(), "max_size = 1024\n"));
  const std::string good = read_file(fixtures_dir() + "/firefly/flowd-py-start-tcp-ipv4.txt");
  std::mt19937 rng(6);
  Sender s;
  constexpr int kBad = 10000, kGoodEvery = 10;
  std::set<int> good_ports;
  int sent = 0;
  for (int i = 0; i < kBad; ++i) {
    if (i % kGoodEvery == 0) {
      int sport = 10000 + i / kGoodEvery;
      s.send(port, std::regex_replace(good, std::regex("\"src-port\": 2345"),
                                      "\"src-port\": " + std::to_string(sport)));
      good_ports.insert(sport);
      ++sent;
    }
    s.send(port, bad_datagram(i, rng, good));
    ++sent;
    // Bounded bursts: the test is about parsing, not about the socket buffer of a loaded machine.
    if (sent % 2000 == 0) wait_received(d, sent);
  }
  std::string m = wait_received(d, sent, kBad);
  EXPECT_EQ(metric_value(m, "flowd_firefly_received_total"), sent);
  EXPECT_EQ(sum_rejected(m), kBad) << m;
  for (auto* r : {"truncated", "not_utf8", "header", "json", "missing", "type", "range", "value",
                  "oversized"})
    EXPECT_GT(metric_value(m, std::string("flowd_firefly_rejected_total{reason=\"") + r + "\"}")
                  .value_or(0),
              0)
        << r;
  auto got = collector.receive_many(good_ports.size());
  std::set<int> ports;
  for (const auto& g : got)
    ports.insert(nlohmann::json::parse(json_part(g))["flow-id"]["src-port"].get<int>());
  EXPECT_EQ(ports, good_ports);
  EXPECT_TRUE(d.proc->running());
  std::string log = d.proc->log();
  std::size_t lines = 0;
  for (auto at = log.find("dropped: "); at != std::string::npos; at = log.find("dropped: ", at + 1))
    ++lines;
  EXPECT_GT(lines, 0u);
  EXPECT_LT(lines, 200u) << "warnings about bad fireflies are rate-limited";
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
