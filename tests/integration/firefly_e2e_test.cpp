// SPDX-License-Identifier: Apache-2.0
// End to end: a line written into the real FIFO becomes a real UDP firefly and a real metric.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "daemon_fixture.hpp"
#include "firefly_schema.hpp"
#include "netns_scope.hpp"

namespace flowd::test {
namespace {

struct Firefly {
  std::string timestamp, host;
  nlohmann::json body;
};

Firefly parse_firefly(const std::string& datagram) {
  static const std::regex header(
      R"(^<134>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) (\S+) flowd - firefly-json - )");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(datagram, m, header)) << datagram;
  Firefly f;
  if (m.empty()) return f;
  f.timestamp = m[1];
  f.host = m[2];
  f.body = nlohmann::json::parse(datagram.substr(static_cast<std::size_t>(m.length(0))));
  EXPECT_EQ(firefly_schema_errors({datagram}), "") << "docs/firefly.schema.json";
  return f;
}

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

TEST(FireflyEndToEnd, StartLineBecomesIPv4Firefly) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n");
  auto msg = d.rx4.receive();
  ASSERT_TRUE(msg) << d.proc->log();
  auto f = parse_firefly(*msg);
  EXPECT_EQ(f.host, hostname());
  const auto& j = f.body;
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["flow-lifecycle"]["state"], "start");
  EXPECT_EQ(j["flow-lifecycle"]["current-time"], f.timestamp);
  EXPECT_TRUE(j["flow-lifecycle"]["start-time"].is_string());
  EXPECT_FALSE(j["flow-lifecycle"].contains("end-time"));
  EXPECT_EQ(j["flow-id"]["afi"], "ipv4");
  EXPECT_EQ(j["flow-id"]["src-ip"], "127.0.0.1");
  EXPECT_EQ(j["flow-id"]["dst-ip"], "127.0.0.1");
  EXPECT_EQ(j["flow-id"]["protocol"], "tcp");
  EXPECT_EQ(j["flow-id"]["src-port"], 2345);
  EXPECT_EQ(j["flow-id"]["dst-port"], 5777);
  EXPECT_EQ(j["context"]["experiment-id"], 2);
  EXPECT_EQ(j["context"]["activity-id"], 9);
  EXPECT_EQ(j["context"]["application"], std::string("flowd-cpp v") + FLOWD_VERSION);
  // Key order as the Python original emits it.
  EXPECT_LT(msg->find("\"version\""), msg->find("\"flow-lifecycle\""));
  EXPECT_LT(msg->find("\"flow-lifecycle\""), msg->find("\"flow-id\""));
  EXPECT_LT(msg->find("\"flow-id\""), msg->find("\"context\""));
  EXPECT_EQ(d.stop(), 0);
}

TEST(FireflyEndToEnd, IPv6FireflyAndEndCarriesStartTime) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(), "start udp ::1 40000 ::1 5001 cms Cache\n");
  auto start = d.rx6.receive();
  ASSERT_TRUE(start) << d.proc->log();
  write_pipe(d.pipe(), "END UDP ::1 40000 ::1 5001 3 3\n");
  auto end = d.rx6.receive();
  ASSERT_TRUE(end) << d.proc->log();
  auto s = parse_firefly(*start).body;
  auto e = parse_firefly(*end).body;
  EXPECT_EQ(s["flow-id"]["afi"], "ipv6");
  EXPECT_EQ(s["flow-id"]["src-ip"], "::1");
  EXPECT_EQ(s["flow-id"]["protocol"], "udp");
  EXPECT_EQ(s["context"]["experiment-id"], 3);
  EXPECT_EQ(s["context"]["activity-id"], 3);
  EXPECT_EQ(e["flow-lifecycle"]["state"], "end");
  // Unlike the Python original (null), the end firefly repeats the flow's real start time.
  EXPECT_EQ(e["flow-lifecycle"]["start-time"], s["flow-lifecycle"]["start-time"]);
  EXPECT_TRUE(e["flow-lifecycle"]["end-time"].is_string());
  EXPECT_FALSE(d.rx4.receive(200ms)) << "an IPv6 flow's firefly must not go to the IPv4 address";
  EXPECT_EQ(d.stop(), 0);
}

TEST(FireflyEndToEnd, CollectorGetsACopyAndSourceOverride) {
  Daemon d;
  UdpReceiver collector;
  d.start(d.config("collector = 127.0.0.1:" + std::to_string(collector.port()) +
                   "\nip4_src = 192.0.2.7\n"));
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1111 127.0.0.1 2222 atlas Debug\n");
  auto peer = d.rx4.receive();
  auto copy = collector.receive();
  ASSERT_TRUE(peer && copy) << d.proc->log();
  EXPECT_EQ(*peer, *copy);
  EXPECT_EQ(parse_firefly(*peer).body["flow-id"]["src-ip"], "192.0.2.7");
  EXPECT_EQ(d.stop(), 0);
}

TEST(FireflyEndToEnd, MetricsScrapePassesPromtool) {
  Daemon d;
  d.start(d.config());
  write_pipe(
      d.pipe(),
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\nstart tcp 127.0.0.1 2346 127.0.0.1 5777 2 9\n"
      "end tcp 127.0.0.1 2346 127.0.0.1 5777 2 9\nnot a flow\n");
  ASSERT_EQ(d.rx4.receive_many(3).size(), 3u) << d.proc->log();
  // udp_firefly counts a batch after sendmmsg() returns and the prometheus backend drains its own
  // queue, so both may trail the datagrams by a moment: scrape until they caught up (at most 2 s).
  std::string m;
  for (int i = 0; i < 200; ++i) {
    m = d.scrape();
    if (metric_value(m, "flowd_fireflies_sent_total{destination=\"flow\"}") == 3 &&
        metric_value(m, "flowd_np_api_lines_total") == 4 &&
        metric_value(
            m, "flowd_active_flows{activity=\"Debug\",experiment=\"atlas\",origin=\"local\"}") == 1)
      break;
    usleep(10000);
  }
  ASSERT_FALSE(m.empty());
  // The commit is written at build time into one generated source: the binary reports that one.
  const std::string info = read_file(FLOWD_BUILD_INFO_CPP);
  const auto q = info.find("kBuildCommit = \"");
  ASSERT_NE(q, std::string::npos) << info;
  const std::string commit = info.substr(q + 16, info.find('"', q + 16) - (q + 16));
  EXPECT_TRUE(commit == "unknown" || commit.size() == 12) << commit;
  EXPECT_EQ(
      metric_value(m, "flowd_build_info{commit=\"" + commit + "\",version=\"" FLOWD_VERSION "\"}"),
      1)
      << commit;
  EXPECT_EQ(metric_value(
                m, "flowd_flow_events_total{origin=\"local\",plugin=\"np_api\",state=\"start\"}"),
            2);
  EXPECT_EQ(
      metric_value(m, "flowd_flow_events_total{origin=\"local\",plugin=\"np_api\",state=\"end\"}"),
      1);
  EXPECT_EQ(metric_value(
                m, "flowd_active_flows{activity=\"Debug\",experiment=\"atlas\",origin=\"local\"}"),
            1);
  EXPECT_EQ(metric_value(m, "flowd_np_api_lines_total"), 4);
  EXPECT_EQ(metric_value(m, "flowd_np_api_rejected_lines_total{reason=\"fields\"}"), 1);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"flow\"}"), 3);
  EXPECT_EQ(metric_value(m, "flowd_firefly_send_errors_total{destination=\"flow\"}"), 0);
  EXPECT_EQ(metric_value(m, "flowd_bus_dropped_events_total{backend=\"udp_firefly\"}"), 0);
  EXPECT_TRUE(metric_value(m, "flowd_bus_queue_depth{backend=\"prometheus\"}"));
  // The README documents every flowd_* metric family.
  std::string readme = read_file(std::string(FLOWD_SOURCE_DIR) + "/README.md");
  std::istringstream lines(m);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE flowd_", 0) != 0) continue;
    std::string name = line.substr(7, line.find(' ', 7) - 7);
    EXPECT_NE(readme.find("`" + name + "`"), std::string::npos)
        << name << " is missing from README.md";
  }
  std::string out;
  EXPECT_EQ(run_shell("promtool check metrics", m, out), 0) << out;
  EXPECT_EQ(out.find("problem"), std::string::npos) << out;
  EXPECT_EQ(d.stop(), 0);
}

TEST(FireflyEndToEnd, RegistryFromHttpUrlIsUsedAndCached) {
  TempDir www;
  www.write("api.json", read_file(fixtures_dir() + "/registry/api.json"));
  int port = free_tcp_port();
  std::string cmd = "cd " + www.path() + " && exec python3 -m http.server " + std::to_string(port) +
                    " --bind 127.0.0.1 >/dev/null 2>&1";
  FILE* server = popen(("sh -c '" + cmd + "' & echo $!").c_str(), "r");
  char pidbuf[32] = {};
  ASSERT_TRUE(fgets(pidbuf, sizeof pidbuf, server));
  pclose(server);
  pid_t pid = std::atoi(pidbuf);
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/api.json";
  for (int i = 0; i < 100 && !http_get(url); ++i)
    usleep(50000);  // the server needs a moment to bind
  Daemon d;
  // Links another user could have left in the cache: the cache is never written through them.
  ASSERT_EQ(mkdir(d.dir.file("cache").c_str(), 0755), 0);
  d.dir.write("victim", "not flowd's\n");
  ASSERT_EQ(symlink(d.dir.file("victim").c_str(), d.dir.file("cache/api.json.tmp").c_str()), 0);
  ASSERT_EQ(symlink(d.dir.file("victim").c_str(), d.dir.file("cache/api.json").c_str()), 0);
  d.start(d.config("", "flow_map_api = " + url + "\n"));
  kill(pid, SIGTERM);
  EXPECT_NE(d.proc->log().find("from " + url), std::string::npos) << d.proc->log();
  EXPECT_EQ(read_file(d.dir.file("cache/api.json")),
            read_file(fixtures_dir() + "/registry/api.json"));
  EXPECT_EQ(read_file(d.dir.file("victim")), "not flowd's\n");
  struct stat st {};
  ASSERT_EQ(lstat(d.dir.file("cache/api.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode))
      << "api.json replaced by a file of flowd's own, not written through the link";
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 belleii perfSONAR\n");
  auto f = d.rx4.receive();
  ASSERT_TRUE(f);
  EXPECT_EQ(parse_firefly(*f).body["context"]["experiment-id"], 6);
  EXPECT_EQ(parse_firefly(*f).body["context"]["activity-id"], 2);
  EXPECT_EQ(d.stop(), 0);
}

// Rewrites the configuration and reloads; returns once the reload is done (READY=1 again).
void reload(Daemon& d, const std::string& config) {
  d.dir.write("flowd.cfg", config);
  d.proc->signal(SIGHUP);
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
}

// retry15d N2: a reload that restarts udp_firefly (here: max_tracked_flows changed) used to forget
// the start times of the live flows, so each end firefly said the flow started at its end. The
// successor takes them over; into a smaller table it keeps the newest and counts the rest. issue 15
// E5: the end of a flow whose start time was not kept carried its own time as start-time; every end
// now carries the start time of the start the backends saw (the bus's arbiter puts it on the end).
TEST(FireflyEndToEnd, EndAfterAReloadThatRestartsTheBackendCarriesTheRealStartTime) {
  Daemon d;
  d.start(d.config("max_tracked_flows = 100\n"));
  write_pipe(d.pipe(),
             "start tcp 127.0.0.1 3001 127.0.0.1 5777 2 9\n"
             "start tcp 127.0.0.1 3002 127.0.0.1 5777 2 9\n"
             "start tcp 127.0.0.1 3003 127.0.0.1 5777 2 9\n");
  std::map<int, nlohmann::json> starts;
  for (const auto& m : d.rx4.receive_many(3)) {
    auto j = parse_firefly(m).body;
    starts[j["flow-id"]["src-port"].get<int>()] = j["flow-lifecycle"];
  }
  ASSERT_EQ(starts.size(), 3u) << d.proc->log();
  // The end must come well after the start for a start-time taken from the end to show.
  std::this_thread::sleep_for(50ms);
  reload(d, d.config("max_tracked_flows = 2\n"));
  EXPECT_NE(d.proc->log().find("stopped backend udp_firefly"), std::string::npos) << d.proc->log();
  EXPECT_NE(d.proc->log().find("kept the start times of 2 of the 3 flows"), std::string::npos)
      << d.proc->log();
  write_pipe(d.pipe(),
             "end tcp 127.0.0.1 3001 127.0.0.1 5777 2 9\n"
             "end tcp 127.0.0.1 3002 127.0.0.1 5777 2 9\n"
             "end tcp 127.0.0.1 3003 127.0.0.1 5777 2 9\n");
  std::map<int, nlohmann::json> ends;
  for (const auto& m : d.rx4.receive_many(3)) {
    auto j = parse_firefly(m).body;
    ends[j["flow-id"]["src-port"].get<int>()] = j["flow-lifecycle"];
  }
  ASSERT_EQ(ends.size(), 3u) << d.proc->log();
  for (int port : {3001, 3002, 3003}) {
    EXPECT_EQ(ends[port]["state"], "end");
    EXPECT_EQ(ends[port]["start-time"], starts[port]["start-time"]) << port;
    EXPECT_NE(ends[port]["start-time"], ends[port]["end-time"]) << port;
  }
  // The oldest did not fit in the smaller table (counted); its end still has its start-time.
  const std::string m = d.scrape_until(
      "flowd_firefly_flows_overflow_total{origin=\"local\",table=\"start_time\"}", 1);
  EXPECT_EQ(
      metric_value(m, "flowd_firefly_flows_overflow_total{origin=\"local\",table=\"start_time\"}"),
      1);
  EXPECT_EQ(d.stop(), 0);
}

// The same when a reload removes the backend and another adds it back: the new instance takes the
// start times of the flows the daemon lists as active.
TEST(FireflyEndToEnd, ABackendAddedBackByAReloadKnowsTheActiveFlowsStartTimes) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 3101 127.0.0.1 5777 2 9\n");
  auto start = d.rx4.receive();
  ASSERT_TRUE(start) << d.proc->log();
  // udp_firefly left out of the list (its section stays: a warning, nothing more).
  std::string without = d.config();
  const std::string both = "backends = udp_firefly, prometheus";
  without.replace(without.find(both), both.size(), "backends = prometheus");
  reload(d, without);
  EXPECT_NE(d.proc->log().find("stopped backend udp_firefly"), std::string::npos) << d.proc->log();
  // A flow that starts while no udp_firefly runs.
  write_pipe(d.pipe(), "start tcp 127.0.0.1 3102 127.0.0.1 5777 2 9\n");
  d.scrape_until("flowd_flow_events_total{plugin=\"np_api\",state=\"start\"}", 2);
  std::this_thread::sleep_for(50ms);
  reload(d, d.config());
  EXPECT_NE(d.proc->log().find("took the start times of 2 active flows"), std::string::npos)
      << d.proc->log();
  write_pipe(
      d.pipe(),
      "end tcp 127.0.0.1 3101 127.0.0.1 5777 2 9\nend tcp 127.0.0.1 3102 127.0.0.1 5777 2 9\n");
  std::map<int, nlohmann::json> ends;
  for (const auto& m : d.rx4.receive_many(2)) {
    auto j = parse_firefly(m).body;
    ends[j["flow-id"]["src-port"].get<int>()] = j["flow-lifecycle"];
  }
  ASSERT_EQ(ends.size(), 2u) << d.proc->log();
  EXPECT_EQ(ends[3101]["start-time"], parse_firefly(*start).body["flow-lifecycle"]["start-time"]);
  for (int port : {3101, 3102})
    EXPECT_LT(ends[port]["start-time"].get<std::string>(),
              ends[port]["end-time"].get<std::string>())
        << port;
  EXPECT_EQ(d.stop(), 0);
}

// A real TCP connection on loopback (a listener, its client and the accepted socket), closed when
// the test leaves: a flow with a socket for netlink = yes.
struct LoopbackConnection {
  int server = -1, client = -1, peer = -1, client_port = 0, server_port = 0;
  bool open() {
    server = tcp_listen("127.0.0.1", 0);
    sockaddr_in sa{};
    socklen_t sl = sizeof sa;
    if (server < 0 || getsockname(server, reinterpret_cast<sockaddr*>(&sa), &sl) != 0) return false;
    server_port = ntohs(sa.sin_port);
    client = tcp_connect("127.0.0.1", server_port, &client_port);
    if (client >= 0) peer = ::accept(server, nullptr, nullptr);
    return client >= 0 && peer >= 0;
  }
  // The np_api line's flow part, tagged 2/9.
  std::string pipe_flow() const {
    return "tcp 127.0.0.1 " + std::to_string(client_port) + " 127.0.0.1 " +
           std::to_string(server_port) + " 2 9\n";
  }
  ~LoopbackConnection() {
    for (int fd : {peer, client, server})
      if (fd >= 0) ::close(fd);
  }
};

// The other per-flow state of udp_firefly, netlink = yes: the sockets of the live flows. After a
// reload that restarts the backend, a flow live across it still gets its ongoing fireflies.
TEST(FireflyEndToEnd, OngoingFirefliesGoOnAcrossAReloadThatRestartsTheBackend) {
  Daemon d;
  const std::string netlink = "netlink = yes\nongoing_interval = 1s\n";
  d.start(d.config(netlink));
  LoopbackConnection c;
  ASSERT_TRUE(c.open());
  const int client_port = c.client_port;
  const std::string flow = c.pipe_flow();
  write_pipe(d.pipe(), "start " + flow);
  auto start = d.rx4.receive();
  ASSERT_TRUE(start) << d.proc->log();
  EXPECT_EQ(parse_firefly(*start).body["flow-lifecycle"]["state"], "start");
  reload(d, d.config(netlink + "max_tracked_flows = 1000\n"));
  EXPECT_NE(d.proc->log().find("stopped backend udp_firefly"), std::string::npos) << d.proc->log();
  // What the stopped instance sent (an ongoing firefly of its own) is not what this test is about.
  while (d.rx4.receive(0ms)) {
  }
  // Within two intervals of the new instance, an ongoing firefly of the flow, with its socket.
  std::optional<nlohmann::json> ongoing;
  for (const auto& m : d.rx4.receive_many(2, 2500ms)) {
    auto j = parse_firefly(m).body;
    if (j["flow-lifecycle"]["state"] == "ongoing") ongoing = j;
  }
  ASSERT_TRUE(ongoing) << "no ongoing firefly after the reload\n" << d.proc->log();
  EXPECT_EQ((*ongoing)["flow-id"]["src-port"], client_port);
  EXPECT_EQ((*ongoing)["flow-lifecycle"]["start-time"],
            parse_firefly(*start).body["flow-lifecycle"]["start-time"]);
  EXPECT_TRUE(ongoing->contains("netlink")) << ongoing->dump();
  write_pipe(d.pipe(), "end " + flow);
  EXPECT_EQ(d.stop(), 0);
}

// issue 15 E5: udp_firefly removed by a reload and added back by another, netlink = yes: the flows
// live before it was added got no ongoing fireflies (it took their start times from the daemon's
// status, not their sockets).
TEST(FireflyEndToEnd, ABackendAddedBackByAReloadSendsOngoingFirefliesForTheLiveFlows) {
  Daemon d;
  const std::string netlink = "netlink = yes\nongoing_interval = 1s\n";
  d.start(d.config(netlink));
  LoopbackConnection c;
  ASSERT_TRUE(c.open());
  const std::string flow = c.pipe_flow();
  write_pipe(d.pipe(), "start " + flow);
  auto start = d.rx4.receive();
  ASSERT_TRUE(start) << d.proc->log();
  std::string without = d.config(netlink);
  const std::string both = "backends = udp_firefly, prometheus";
  without.replace(without.find(both), both.size(), "backends = prometheus");
  reload(d, without);
  EXPECT_NE(d.proc->log().find("stopped backend udp_firefly"), std::string::npos) << d.proc->log();
  reload(d, d.config(netlink));
  while (d.rx4.receive(0ms)) {
  }
  std::optional<nlohmann::json> ongoing;
  for (const auto& m : d.rx4.receive_many(2, 2500ms)) {
    auto j = parse_firefly(m).body;
    if (j["flow-lifecycle"]["state"] == "ongoing") ongoing = j;
  }
  ASSERT_TRUE(ongoing) << "no ongoing firefly from the backend added back\n" << d.proc->log();
  EXPECT_EQ((*ongoing)["flow-id"]["src-port"], c.client_port);
  EXPECT_EQ((*ongoing)["flow-lifecycle"]["start-time"],
            parse_firefly(*start).body["flow-lifecycle"]["start-time"]);
  EXPECT_TRUE(ongoing->contains("netlink")) << ongoing->dump();
  write_pipe(d.pipe(), "end " + flow);
  EXPECT_EQ(d.stop(), 0);
}

// Reloads that restart the backend more often than ongoing_interval (a user's try, issue 15):
// each started the interval again, so no ongoing firefly was ever sent. The successor keeps its
// predecessor's schedule.
TEST(FireflyEndToEnd, ReloadsMoreOftenThanTheOngoingIntervalDoNotStopOngoingFireflies) {
  Daemon d;
  const std::string netlink = "netlink = yes\nongoing_interval = 2s\n";
  d.start(d.config(netlink));
  LoopbackConnection c;
  ASSERT_TRUE(c.open());
  const std::string flow = c.pipe_flow();
  write_pipe(d.pipe(), "start " + flow);
  ASSERT_TRUE(d.rx4.receive()) << d.proc->log();
  // A reload every 1.2 s for 6 s, each changing the backend's section (so restarting it).
  int ongoing = 0;
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(1200ms);
    reload(d, d.config(netlink + "max_tracked_flows = " + std::to_string(1000 + i) + "\n"));
    while (auto m = d.rx4.receive(0ms))
      ongoing += parse_firefly(*m).body["flow-lifecycle"]["state"] == "ongoing";
  }
  EXPECT_GE(ongoing, 2) << "ongoing fireflies in 6 s of reloads every 1.2 s (interval 2 s)\n"
                        << d.proc->log();
  write_pipe(d.pipe(), "end " + flow);
  EXPECT_EQ(d.stop(), 0);
}

// issue 15 E6: the np_api section of config() with `keys` added.
std::string with_np_api_keys(std::string cfg, const std::string& keys) {
  const std::string section = "[plugin.np_api]\n";
  cfg.insert(cfg.find(section) + section.size(), keys);
  return cfg;
}

const std::string kExpiredClosed =
    "flowd_explicit_flows_expired_total{plugin=\"np_api\",reason=\"connection_closed\"}";
const std::string kNpApiChecks = "flowd_explicit_flow_checks_total{plugin=\"np_api\"}";

// The one firefly of `state` among what arrives within `wait` (others dropped), or nullopt.
std::optional<nlohmann::json> firefly_of(UdpReceiver& rx, const std::string& state,
                                         std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = rx.receive(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
    if (!m) break;
    auto j = parse_firefly(*m).body;
    if (j["flow-lifecycle"]["state"] == state) return j;
  }
  return std::nullopt;
}

// issue 15 E6: a transfer tool killed after its `start` (its `end` never comes) left its flow
// active for ever: marked, listed, no end firefly. np_api checks its TCP flows against the
// kernel's sockets every check_interval and ends the one whose connection closed.
TEST(FireflyEndToEnd, AFlowWhoseConnectionClosedWithoutTheToolsEndIsEndedByTheCheck) {
  Daemon d;
  d.start(with_np_api_keys(d.config(), "check_interval = 1s\n"));
  auto c = std::make_unique<LoopbackConnection>();
  ASSERT_TRUE(c->open());
  const int client_port = c->client_port;
  write_pipe(d.pipe(), "start " + c->pipe_flow());
  auto start = firefly_of(d.rx4, "start", 3s);
  ASSERT_TRUE(start) << d.proc->log();
  // Two checks while the connection is open: an open connection is not ended.
  d.scrape_until(kNpApiChecks, 2, 5s);
  EXPECT_FALSE(firefly_of(d.rx4, "end", 0ms));
  c.reset();  // the tool dies: its sockets close, no end line
  auto end = firefly_of(d.rx4, "end", 3s);
  ASSERT_TRUE(end) << "no end firefly within 3 s of the close (check_interval 1 s)\n"
                   << d.proc->log();
  EXPECT_EQ((*end)["flow-id"]["src-port"], client_port);
  EXPECT_EQ((*end)["flow-lifecycle"]["start-time"], (*start)["flow-lifecycle"]["start-time"]);
  const std::string m = d.scrape_until(kExpiredClosed, 1);
  EXPECT_EQ(metric_value(m, kExpiredClosed), 1) << m;
  EXPECT_EQ(metric_sum(m, "flowd_active_flows").value_or(0), 0) << m;
  EXPECT_NE(
      d.proc->log().find("ended the np_api flow tcp 127.0.0.1 " + std::to_string(client_port)),
      std::string::npos)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// A tool may announce its flow before its connect(): the first check that finds no connection
// does not end it, and once connected it is followed like any other.
TEST(FireflyEndToEnd, AFlowAnnouncedBeforeItsConnectionIsNotEndedByTheFirstCheck) {
  Daemon d;
  d.start(with_np_api_keys(d.config(), "check_interval = 1s\n"));
  const int server = tcp_listen("127.0.0.1", 0);
  ASSERT_GE(server, 0);
  sockaddr_in sa{};
  socklen_t sl = sizeof sa;
  ASSERT_EQ(getsockname(server, reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  const int server_port = ntohs(sa.sin_port);
  const int client_port = free_tcp_port();
  const std::string flow = "tcp 127.0.0.1 " + std::to_string(client_port) + " 127.0.0.1 " +
                           std::to_string(server_port) + " 2 9\n";
  write_pipe(d.pipe(), "start " + flow);
  ASSERT_TRUE(firefly_of(d.rx4, "start", 3s)) << d.proc->log();
  // The first check (the counter counts checks with flows to check) finds no connection.
  d.scrape_until(kNpApiChecks, 1, 5s);
  // Now the tool connects, from the port it announced.
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(client, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in me{};
  me.sin_family = AF_INET;
  me.sin_port = htons(static_cast<std::uint16_t>(client_port));
  me.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(client, reinterpret_cast<sockaddr*>(&me), sizeof me), 0) << strerror(errno);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << strerror(errno);
  const int peer = ::accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  // Three more checks: it is open, so never ended.
  std::string m = d.scrape_until(kNpApiChecks, 4, 6s);
  EXPECT_GE(metric_value(m, kNpApiChecks).value_or(0), 4) << m;
  EXPECT_FALSE(firefly_of(d.rx4, "end", 0ms)) << d.proc->log();
  EXPECT_EQ(metric_sum(m, "flowd_explicit_flows_expired_total").value_or(0), 0) << m;
  for (int fd : {client, peer, server}) ::close(fd);
  auto end = firefly_of(d.rx4, "end", 3s);
  ASSERT_TRUE(end) << d.proc->log();
  EXPECT_EQ((*end)["flow-id"]["src-port"], client_port);
  m = d.scrape_until(kExpiredClosed, 1);
  EXPECT_EQ(metric_value(m, kExpiredClosed), 1) << m;
  EXPECT_EQ(d.stop(), 0);
}

// A flow announced whose connection never opens is ended at the second check in a row without
// it (connection_not_found), not at the first.
TEST(FireflyEndToEnd, AFlowWhoseConnectionNeverOpensIsEndedAtTheSecondCheck) {
  Daemon d;
  d.start(with_np_api_keys(d.config(), "check_interval = 1s\n"));
  write_pipe(d.pipe(), "start tcp 127.0.0.1 3201 127.0.0.1 5777 2 9\n");
  ASSERT_TRUE(firefly_of(d.rx4, "start", 3s)) << d.proc->log();
  const std::string not_found =
      "flowd_explicit_flows_expired_total{plugin=\"np_api\",reason=\"connection_not_found\"}";
  std::string m = d.scrape_until(kNpApiChecks, 1, 5s);
  EXPECT_EQ(metric_value(m, not_found), 0) << m;
  auto end = firefly_of(d.rx4, "end", 3s);
  ASSERT_TRUE(end) << d.proc->log();
  m = d.scrape_until(not_found, 1);
  EXPECT_EQ(metric_value(m, not_found), 1) << m;
  EXPECT_EQ(metric_value(m, kNpApiChecks), 2) << m;
  EXPECT_EQ(d.stop(), 0);
}

// check_interval is checked like the other durations: whole seconds, 0 (off) to 1 h.
TEST(FireflyEndToEnd, CheckIntervalIsWholeSecondsUpToAnHour) {
  Daemon d;
  std::string out, err;
  for (const char* bad : {"500ms", "2h", "-1"}) {
    d.dir.write("c.cfg",
                with_np_api_keys(d.config(), std::string("check_interval = ") + bad + "\n"));
    EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("c.cfg")}, out, err), 2) << bad;
    EXPECT_NE(err.find("[plugin.np_api] check_interval"), std::string::npos) << bad << ": " << err;
  }
  for (const char* good : {"0", "1s", "90", "1h"}) {
    d.dir.write("c.cfg",
                with_np_api_keys(d.config(), std::string("check_interval = ") + good + "\n"));
    EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("c.cfg")}, out, err), 0)
        << good << ": " << err;
  }
}

// try15g 7: a reload that restarts np_api made its successor forget which flows a check had found
// open: a connection that closed then was ended one check late, as connection_not_found. The
// check's findings are handed to the successor (the reload shelf).
TEST(FireflyEndToEnd, AFlowFoundOpenBeforeAReloadThatRestartsNpApiEndsAsClosedAtTheNextCheck) {
  Daemon d;
  d.start(with_np_api_keys(d.config(), "check_interval = 1s\n"));
  auto c = std::make_unique<LoopbackConnection>();
  ASSERT_TRUE(c->open());
  write_pipe(d.pipe(), "start " + c->pipe_flow());
  ASSERT_TRUE(firefly_of(d.rx4, "start", 3s)) << d.proc->log();
  // The counter counts a check as it begins: two of them, so that the first (which found the
  // connection open) is over.
  d.scrape_until(kNpApiChecks, 2, 5s);
  // partial_timeout_ms changed: np_api restarts.
  reload(d, with_np_api_keys(d.config(), "check_interval = 1s\npartial_timeout_ms = 900\n"));
  EXPECT_NE(d.proc->log().find("stopped plugin np_api"), std::string::npos) << d.proc->log();
  c.reset();  // the tool dies: no end line
  auto end = firefly_of(d.rx4, "end", 4s);
  ASSERT_TRUE(end) << d.proc->log();
  EXPECT_NE(d.proc->log().find("checking 1 TCP flows started before this plugin"),
            std::string::npos)
      << d.proc->log();
  const std::string not_found =
      "flowd_explicit_flows_expired_total{plugin=\"np_api\",reason=\"connection_not_found\"}";
  const std::string m = d.scrape_until(kExpiredClosed, 1);
  EXPECT_EQ(metric_value(m, kExpiredClosed), 1) << m;
  EXPECT_EQ(metric_value(m, not_found), 0) << m;
  EXPECT_EQ(d.stop(), 0);
}

// try15g 5: flowd killed with -9 while more flows were live than a backend's queue holds; their
// connections closed meanwhile. The restart ended them all at once, before any backend had read
// one: all but queue_size were dropped (and the log said the kernel plugin's events were). The
// recovered ends now wait for room in the queues: every one reaches the collector.
// try16c F7: a reload that changed work_dir said nothing of the flow journal, which stays in the
// old one: a start after a kill read the new, empty one, and the live flows were neither ended nor
// mentioned. The reload says so, naming the file and what to do.
TEST(FlowJournalEndToEnd, AReloadThatChangesWorkDirSaysTheJournalStaysWhereItWas) {
  Daemon d;
  const std::string cfg = d.config();
  d.start(cfg);
  const std::string old_dir = d.dir.file("cache"), new_dir = d.dir.file("cache2");
  std::string moved = cfg;
  moved.replace(moved.find("work_dir = " + old_dir), 11 + old_dir.size(), "work_dir = " + new_dir);
  ASSERT_NE(moved, cfg);
  reload(d, moved);
  const std::string log = d.proc->log();
  const std::string said = "work_dir changed from '" + old_dir + "' to '" + new_dir +
                           "': the flow journal stays in the old one while this flowd runs (" +
                           old_dir + "/flows.";
  const auto at = log.find(said);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_NE(log.find(".journal); the next start reads the new one's", at), std::string::npos)
      << log;
  reload(d, moved + "\n");  // the same work_dir: nothing said again
  EXPECT_EQ(d.proc->log().find("work_dir changed", log.find("work_dir changed") + 1),
            std::string::npos);
  EXPECT_EQ(d.stop(), 0);
}

// try16c F4: the journal's lock file removed under a running flowd (a clean-up of empty files):
// a second flowd with the same work_dir took the journal over as a dead flowd's, said the first
// "stopped without ending" its flows, followed them as its own, and the two wrote over each other.
// The second sees the journal's writer still runs and keeps none; the first's stays as it was.
TEST(FlowJournalEndToEnd, ASecondFlowdLeavesALiveFlowdsJournalAloneWhenItsLockFileWasRemoved) {
  Daemon a;
  a.start(a.config());
  write_pipe(a.pipe(),
             "start tcp 127.0.0.1 4001 127.0.0.1 5777 2 9\n"
             "start tcp 127.0.0.1 4002 127.0.0.1 5777 2 9\n");
  ASSERT_EQ(a.rx4.receive_many(2).size(), 2u) << a.proc->log();
  std::string journal;
  for (const auto& e : std::filesystem::directory_iterator(a.dir.file("cache")))
    if (e.path().extension() == ".journal") journal = e.path().string();
  ASSERT_FALSE(journal.empty());
  ASSERT_EQ(::unlink((journal + ".lock").c_str()), 0);
  const std::string before = read_file(journal);

  Daemon b;
  std::string cfg = b.config();
  cfg.replace(cfg.find("work_dir = " + b.dir.file("cache")), 11 + b.dir.file("cache").size(),
              "work_dir = " + a.dir.file("cache"));
  b.start(cfg);
  const std::string log = b.proc->log();
  EXPECT_NE(log.find("no flow journal: " + journal + " is written by flowd pid " +
                     std::to_string(a.proc->pid()) + ", which still runs"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("stopped without ending"), std::string::npos) << log;
  EXPECT_FALSE(b.rx4.receive(500ms)) << "nothing of the first one's flows sent by the second";
  EXPECT_EQ(read_file(journal), before) << "the first one's journal as it was";
  EXPECT_EQ(b.stop(), 0);
  EXPECT_EQ(a.stop(), 0);
}

TEST(FlowJournalEndToEnd, AfterKill9MoreRecoveredEndsThanAQueueHoldsAllReachTheBackends) {
  constexpr int kFlows = 200;
  Daemon d;
  const std::string np_keys = "check_interval = 0\n";
  d.start(with_np_api_keys(d.config(), np_keys));
  std::string lines;
  for (int i = 0; i < kFlows; ++i)
    lines += "start tcp 127.0.0.1 " + std::to_string(20000 + i) + " 127.0.0.1 5777 2 9\n";
  write_pipe(d.pipe(), lines);
  ASSERT_EQ(d.rx4.receive_many(kFlows).size(), static_cast<std::size_t>(kFlows)) << d.proc->log();
  d.proc->signal(SIGKILL);
  ASSERT_EQ(d.proc->wait(5s), 128 + SIGKILL);
  // No connection of theirs is open: the restart ends all of them, into queues of 16.
  d.start(with_np_api_keys(d.config("", "queue_size = 16\n"), np_keys));
  std::set<int> ended;
  for (const auto& m : d.rx4.receive_many(kFlows)) {
    // The body only (parse_firefly runs the schema validator, once a datagram: too slow for 200).
    auto j = nlohmann::json::parse(m.substr(m.find('{')));
    EXPECT_EQ(j["flow-lifecycle"]["state"], "end");
    ended.insert(j["flow-id"]["src-port"].get<int>());
  }
  EXPECT_EQ(ended.size(), static_cast<std::size_t>(kFlows)) << d.proc->log();
  const std::string m = d.scrape();
  EXPECT_EQ(metric_value(m, "flowd_flow_journal_recovered_total{outcome=\"ended\"}"), kFlows) << m;
  EXPECT_EQ(metric_sum(m, "flowd_bus_dropped_events_total"), 0) << m;
  EXPECT_EQ(d.proc->log().find("queue is"), std::string::npos) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// try15k A2: a restart stopped while it sent the recovered ends to the backends. Its stop drained
// the queues (the collector got those ends) without taking them out of the journal, and the next
// start sent them again: 65,600 of 100,000 twice. What the drain sends now leaves the journal at
// the stop: every end reaches the collector once, across the cut start and the next one.
TEST(FlowJournalEndToEnd, ARestartStoppedWhileItSendsRecoveredEndsSendsNoneOfThemTwice) {
  constexpr int kFlows = 3000;
  Daemon d;
  const std::string np_keys = "check_interval = 0\n";
  d.start(with_np_api_keys(d.config(), np_keys));
  std::string lines;
  for (int i = 0; i < kFlows; ++i)
    lines += "start tcp 127.0.0.1 " + std::to_string(10000 + i) + " 127.0.0.1 5777 2 9\n";
  write_pipe(d.pipe(), lines);
  ASSERT_EQ(d.rx4.receive_many(kFlows).size(), static_cast<std::size_t>(kFlows)) << d.proc->log();
  d.proc->signal(SIGKILL);
  ASSERT_EQ(d.proc->wait(5s), 128 + SIGKILL);
  std::map<int, int> ended;
  const auto count = [&](const std::string& m) {
    auto j = nlohmann::json::parse(m.substr(m.find('{')));  // the body only (fast)
    EXPECT_EQ(j["flow-lifecycle"]["state"], "end");
    ++ended[j["flow-id"]["src-port"].get<int>()];
  };
  // The restart ends them all into queues of 16, waiting for room; it is stopped as soon as the
  // first end reaches the collector.
  const std::string small = with_np_api_keys(d.config("", "queue_size = 16\n"), np_keys);
  d.launch(small);
  auto first = d.rx4.receive(10s);
  ASSERT_TRUE(first) << d.proc->log();
  d.proc->signal(SIGTERM);
  ASSERT_EQ(d.proc->wait(20s), 0) << d.proc->log();
  count(*first);
  for (const auto& m : d.rx4.receive_many(kFlows, 1s)) count(m);
  const std::size_t cut = ended.size();
  RecordProperty("ends_before_stop", static_cast<int>(cut));
  ASSERT_LT(cut, static_cast<std::size_t>(kFlows))
      << "the stop came after the last end: nothing was cut short\n"
      << d.proc->log();
  // The next start sends the rest, and only the rest.
  d.start(small);
  for (const auto& m : d.rx4.receive_many(kFlows - cut)) count(m);
  EXPECT_EQ(ended.size(), static_cast<std::size_t>(kFlows)) << d.proc->log();
  std::size_t twice = 0;
  for (const auto& [port, n] : ended) twice += n > 1;
  EXPECT_EQ(twice, 0u) << "of " << cut << " ends sent before the stop\n" << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
