// SPDX-License-Identifier: Apache-2.0
// Start, readiness, reload, stop and failure paths of the real daemon.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

bool is_fifo(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
}

TEST(Lifecycle, ReadyStatusThenSigtermExitsZeroAndRemovesPipe) {
  Daemon d;
  d.start(d.config());
  EXPECT_NE(d.ready_message.find("STATUS=plugins=np_api backends=udp_firefly,prometheus"),
            std::string::npos)
      << d.ready_message;
  EXPECT_TRUE(is_fifo(d.pipe()));
  struct stat st {};
  ASSERT_EQ(::stat(d.pipe().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  auto t0 = std::chrono::steady_clock::now();
  d.proc->signal(SIGTERM);
  EXPECT_TRUE(d.notify->wait_for("STOPPING=1"));
  auto rc = d.proc->wait(5s);
  ASSERT_TRUE(rc) << "no exit within 5 s";
  EXPECT_EQ(*rc, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_FALSE(is_fifo(d.pipe())) << "the FIFO must be removed at exit";
}

TEST(Lifecycle, PipeModeIsConfigurable) {
  Daemon d;
  std::string cfg = d.config();
  cfg.replace(cfg.find("[plugin.np_api]\n") + 16, 0, "mode = 0620\n");
  d.start(cfg);
  struct stat st {};
  ASSERT_EQ(::stat(d.pipe().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, SigintAlsoStopsCleanly) {
  Daemon d;
  d.start(d.config());
  d.proc->signal(SIGINT);
  EXPECT_EQ(d.proc->wait(5s), 0);
}

TEST(Lifecycle, WatchdogIsPettedWhenSystemdAsksForIt) {
  Daemon d;
  d.start(d.config(), "flowd.cfg", {"WATCHDOG_USEC=200000"});
  EXPECT_NE(d.proc->log().find("systemd watchdog every 100 ms"), std::string::npos)
      << d.proc->log();
  EXPECT_TRUE(d.notify->wait_for("WATCHDOG=1", 2s));
  EXPECT_TRUE(d.notify->wait_for("WATCHDOG=1", 2s));
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, SighupAppliesAGoodConfig) {
  Daemon d;
  d.start(d.config());
  struct stat before {};
  ASSERT_EQ(::stat(d.pipe().c_str(), &before), 0);
  UdpReceiver other;
  std::string next = d.config();
  next.replace(next.find("port = " + std::to_string(d.rx4.port())),
               7 + std::to_string(d.rx4.port()).size(), "port = " + std::to_string(other.port()));
  d.dir.write("flowd.cfg", next);
  d.proc->signal(SIGHUP);
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  EXPECT_TRUE(other.receive()) << d.proc->log();
  EXPECT_FALSE(d.rx4.receive(300ms));
  EXPECT_NE(d.proc->log().find("reloaded"), std::string::npos);
  struct stat after {};
  ASSERT_EQ(::stat(d.pipe().c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino)
      << "np_api did not change: its pipe must not be re-created";
  EXPECT_EQ(d.stop(), 0);
}

// The metrics listener (civetweb) saw its stop flag only every 2 s: each stop, and each reload that
// restarted the prometheus backend, held every backend's queue that long.
TEST(Lifecycle, StopAndAReloadThatRestartsPrometheusTakeWellUnderASecond) {
  Daemon d;
  d.start(d.config());
  EXPECT_NE(d.scrape().find("flowd_build_info"), std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  d.dir.write("flowd.cfg", d.config() + "max_flow_series = 999\n");
  d.proc->signal(SIGHUP);
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
  auto reload = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(d.proc->log().find("stopped backend prometheus"), std::string::npos) << d.proc->log();
  EXPECT_LT(reload, std::chrono::milliseconds(700)) << d.proc->log();
  EXPECT_NE(d.scrape().find("flowd_build_info"), std::string::npos);
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d.stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(700)) << d.proc->log();
}

// Every component thread carries its component's name (top -H, ps -L, gdb).
TEST(Lifecycle, ComponentThreadsAreNamedAfterTheirComponent) {
  Daemon d;
  d.start(d.config());
  std::set<std::string> names;
  std::string task = "/proc/" + std::to_string(d.proc->pid()) + "/task";
  for (const auto& e : std::filesystem::directory_iterator(task)) {
    std::string comm = read_file(e.path().string() + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    names.insert(comm);
  }
  for (const char* want : {"flowd", "np_api", "udp_firefly", "prometheus"})
    EXPECT_TRUE(names.contains(want)) << want;
  EXPECT_EQ(d.stop(), 0);
}

// Two idle connections to the metrics port kept every scrape out (2 server threads, 30 s timeout).
TEST(Lifecycle, IdleConnectionsToTheMetricsPortDoNotBlockScrapes) {
  Daemon d;
  d.start(d.config());
  std::vector<int> idle;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(d.prom_port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    idle.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(d.scrape().find("flowd_build_info"), std::string::npos) << d.proc->log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  for (int fd : idle) ::close(fd);
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, SighupWithABrokenConfigKeepsTheOldOne) {
  Daemon d;
  d.start(d.config());
  d.dir.write("flowd.cfg", d.config("port = many\n"));
  d.proc->signal(SIGHUP);
  auto status = d.notify->wait_for("STATUS=reload failed");
  ASSERT_TRUE(status) << d.proc->log();
  EXPECT_NE(status->find("[backend.udp_firefly]"), std::string::npos) << *status;
  EXPECT_TRUE(d.proc->running());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  EXPECT_TRUE(d.rx4.receive()) << "the old configuration must keep working";
  EXPECT_NE(d.proc->log().find("reload refused"), std::string::npos);
  EXPECT_EQ(d.stop(), 0);
}

// A value only a component checks (a rule naming no experiment): the reload is refused before any
// component stops, so the collector keeps its templates, flows and sessions.
TEST(Lifecycle, SighupWithAValueOnlyAComponentChecksStopsNothing) {
  Daemon d;
  int nf_port = free_udp_port();
  std::string cfg = d.config_with_plugins("netflow") +
                    "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(nf_port) +
                    "\ntcp_listen =\n";
  d.start(cfg);
  d.dir.write("flowd.cfg", cfg + "rules = 192.0.2.0/24 nosuchexperiment 4\n");
  d.proc->signal(SIGHUP);
  auto status = d.notify->wait_for("STATUS=reload failed");
  ASSERT_TRUE(status) << d.proc->log();
  EXPECT_NE(status->find("[plugin.netflow] rules"), std::string::npos) << *status;
  std::string log = d.proc->log();
  EXPECT_NE(log.find("reload refused"), std::string::npos) << log;
  EXPECT_EQ(log.find("stopped plugin netflow"), std::string::npos) << log;
  EXPECT_EQ(log.find("going back to the previous"), std::string::npos) << log;
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  EXPECT_TRUE(d.rx4.receive()) << "the old configuration must keep working";
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, SighupWithABadDurationKeepsTheOldOne) {
  Daemon d;
  d.start(d.config());
  d.dir.write("flowd.cfg", d.config("stun_timeout_ms = 5 parsecs\n"));
  d.proc->signal(SIGHUP);
  auto status = d.notify->wait_for("STATUS=reload failed");
  ASSERT_TRUE(status) << d.proc->log();
  EXPECT_NE(status->find("stun_timeout_ms"), std::string::npos) << *status;
  EXPECT_TRUE(d.proc->running());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  EXPECT_TRUE(d.rx4.receive()) << "the old configuration must keep working";
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, Sigusr1ReloadsLikeTheOriginalUnitExpects) {
  Daemon d;
  d.start(d.config());
  d.proc->signal(SIGUSR1);
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
  EXPECT_TRUE(d.proc->running());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  EXPECT_TRUE(d.rx4.receive());
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, LegacyConfigStartsTheSamePipeline) {
  Daemon d;
  std::string legacy =
      "# Python flowd 1.1.7 style\n"
      "PLUGIN='np_api'\n"
      "BACKEND='udp_firefly,prometheus'\n"
      "FLOW_MAP_API=''\n"
      "NP_API_FILE='" +
      d.pipe() +
      "'\n"
      "UDP_FIREFLY_PORT=" +
      std::to_string(d.rx4.port()) +
      "\n"
      "PROMETHEUS_SRV_PORT=" +
      std::to_string(d.prom_port) +
      "\n"
      "WORK_DIR='" +
      d.dir.file("cache") +
      "'\n"
      "#NETSTAT_EXPERIMENT='atlas'\n"
      "NETSTAT_INTERNAL_NETWORKS=('192.168.0.0/16', )\n"
      "IP_DISCOVERY_ENABLED = False\n"
      "UDP_FIREFLY_IP4_SRC=''   # unset\n";
  d.start(legacy, "flowd-legacy.cfg");
  EXPECT_NE(d.proc->log().find("legacy Python flowd.cfg"), std::string::npos) << d.proc->log();
  write_pipe(d.pipe(), "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n");
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_TRUE(metric_value(d.scrape(), "flowd_np_api_lines_total"));
  EXPECT_EQ(d.stop(), 0);
}

TEST(Lifecycle, PathThatIsNotAFifoFailsWithExit1) {
  Daemon d;
  d.dir.write("flowd.np", "a regular file\n");
  d.dir.write("flowd.cfg", d.config());
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(5s), 1);
  EXPECT_NE(p.log().find("is a regular file, not a named pipe"), std::string::npos) << p.log();
  EXPECT_EQ(read_file(d.pipe()), "a regular file\n")
      << "flowd must not touch a file it did not create";
}

TEST(Lifecycle, MetricsPortInUseFailsWithExit1) {
  Daemon d;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(d.prom_port));
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  listen(fd, 1);
  d.dir.write("flowd.cfg", d.config());
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(10s), 1);
  EXPECT_NE(p.log().find("cannot start"), std::string::npos) << p.log();
  EXPECT_FALSE(is_fifo(d.pipe())) << "a failed start must clean up the pipe it made";
  close(fd);
}

TEST(Lifecycle, ConfigErrorExits2NamingFileSectionAndKey) {
  Daemon d;
  d.dir.write("flowd.cfg", d.config("prot = 10514\n"));
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(5s), 2);
  std::string log = p.log();
  EXPECT_NE(log.find(d.dir.file("flowd.cfg")), std::string::npos) << log;
  EXPECT_NE(log.find("[backend.udp_firefly]"), std::string::npos) << log;
  EXPECT_NE(log.find("'prot'"), std::string::npos) << log;
  EXPECT_NE(log.find("did you mean 'port'"), std::string::npos) << log;
}

// A value only a component can check (here: netstat without a tag) stops flowd before anything
// starts: before, the backends and np_api were started (metrics served, pipe made) and stopped
// again.
TEST(Cli, AComponentsConfigErrorStopsFlowdBeforeAnythingStarts) {
  Daemon d;
  d.dir.write("flowd.cfg", d.config_with_plugins("netstat"));
  std::string out, err;
  EXPECT_EQ(run_flowd({"-c", d.dir.file("flowd.cfg")}, out, err), 2) << err;
  EXPECT_NE(err.find("[plugin.netstat] experiment: required"), std::string::npos) << err;
  EXPECT_EQ(err.find("serving metrics"), std::string::npos) << err;
  EXPECT_EQ(err.find("started"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(d.pipe())) << "the pipe was made";
}

TEST(Cli, CheckPrintAndConvertConfig) {
  Daemon d;
  d.dir.write("good.cfg", d.config());
  d.dir.write("bad.cfg", "[flowd]\nplugins = np_apj\n");
  d.dir.write(
      "legacy.cfg",
      "PLUGIN='np_api'\nBACKEND='udp_firefly'\nFLOW_MAP_API='https://www.scitags.org/api.json'\n");
  std::string out, err;
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("good.cfg")}, out, err), 0) << err;
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("bad.cfg")}, out, err), 2);
  EXPECT_NE(err.find("did you mean 'np_api'"), std::string::npos) << err;
  // Durations: units are accepted, a bad one is refused naming the key, the value and the forms.
  d.dir.write("units.cfg", d.config("stun_timeout_ms = 1.5s\n"));
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("units.cfg")}, out, err), 0) << err;
  for (const char* bad : {"5 parsecs", "-1s", "0.5.5s", "99999999999999999999h", "70s"}) {
    d.dir.write("bad_duration.cfg", d.config(std::string("stun_timeout_ms = ") + bad + "\n"));
    EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("bad_duration.cfg")}, out, err), 2)
        << bad;
    EXPECT_NE(err.find("[backend.udp_firefly] stun_timeout_ms"), std::string::npos) << err;
    EXPECT_NE(err.find(std::string("got \"") + bad + "\""), std::string::npos) << err;
    EXPECT_NE(err.find("such as 500ms, 2s, 5m or 1h"), std::string::npos) << err;
  }
  // Keys whose help says "empty: …" accept an empty value; other paths do not.
  d.dir.write("empty.cfg",
              "[flowd]\nplugins = np_api\nbackends = ebpf\nwork_dir =\n[plugin.np_api]\npath = " +
                  d.pipe() + "\n[backend.ebpf]\ninterfaces = lo\npin_path =\n");
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("empty.cfg")}, out, err), 0) << err;
  d.dir.write("empty_pipe.cfg", "[flowd]\nplugins = np_api\n[plugin.np_api]\npath =\n");
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("empty_pipe.cfg")}, out, err), 2) << err;
  // Values only a component checks are checked too: each component is built, not started.
  const std::pair<std::string, std::string> component_errors[] = {
      {"[plugin.firefly]\nallow = banana\n", "[plugin.firefly] allow"},
      {"[plugin.netflow]\nlisten = :99999\n", "[plugin.netflow] listen"},
      {"[plugin.netflow]\nrules = 192.0.2.0/33 cms 4\n", "[plugin.netflow] rules"},
      {"[plugin.netflow]\nrules = 192.0.2.0/24 nosuch 4\n", "unknown experiment"},
      {"[plugin.netflow]\nallow = 127.0.0.0/33\n", "[plugin.netflow] allow"}};
  for (const auto& [section, expected] : component_errors) {
    std::string cfg = d.config_with_plugins("firefly, netflow") + section;
    d.dir.write("component.cfg", cfg);
    EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("component.cfg")}, out, err), 2)
        << section;
    EXPECT_NE(err.find(expected), std::string::npos) << section << ": " << err;
  }
  d.dir.write("np.cfg", d.config("", "") + "[plugin.np_api]\ngroup = nosuchgroup\n");
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("np.cfg")}, out, err), 2) << err;
  EXPECT_NE(err.find("[plugin.np_api] group"), std::string::npos) << err;
  struct stat st {};
  EXPECT_NE(::lstat(d.pipe().c_str(), &st), 0) << "a check creates no pipe";
  EXPECT_EQ(run_flowd({"--print-config", "-c", d.dir.file("good.cfg")}, out, err), 0) << err;
  EXPECT_NE(out.find("queue_size = 65536"), std::string::npos) << out;
  EXPECT_NE(out.find("partial_timeout_ms = 1000"), std::string::npos) << out;
  // The printed configuration is itself a valid configuration.
  d.dir.write("printed.cfg", out);
  EXPECT_EQ(run_flowd({"--check-config", "-c", d.dir.file("printed.cfg")}, out, err), 0) << err;
  EXPECT_EQ(run_flowd({"--convert-config", d.dir.file("legacy.cfg")}, out, err), 0) << err;
  EXPECT_NE(out.find("[flowd]\nplugins = np_api\nbackends = udp_firefly\nflow_map_api = "
                     "https://www.scitags.org/api.json"),
            std::string::npos)
      << out;
  EXPECT_EQ(run_flowd({"--version"}, out, err), 0);
  EXPECT_EQ(out, std::string("flowd-cpp ") + FLOWD_VERSION + "\n");
  EXPECT_EQ(run_flowd({"--no-such-flag"}, out, err), 2);
  EXPECT_EQ(run_flowd({"-c", d.dir.file("missing.cfg")}, out, err), 2);
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
}

// A component's configuration error names the file as the key table's do (the README's promise):
// "flowd: bad.cfg: [plugin.kernel] ring_buffer_size: ...", the path exactly once (issue 15). And
// the ebpf marker's interfaces: an entry listed twice, or a pattern whose '[' does not close (which
// would match nothing, silently), are refused naming the key and the entry.
TEST(Cli, ComponentConfigErrorsNameTheFileOnce) {
  TempDir dir;
  const std::string head = "[flowd]\nwork_dir = " + dir.file("cache") + "\n";
  const struct {
    std::string config, expected;
  } cases[] = {
      {"plugins = kernel\n[plugin.kernel]\nexperiment = 2\nactivity = 9\nring_buffer_size = 4097\n",
       "[plugin.kernel] ring_buffer_size: 4097 is not a power of two"},
      {"plugins = netlink\n[plugin.netlink]\nrules = 1094 nosuch default\n",
       "[plugin.netlink] rules: '1094 nosuch default': unknown experiment 'nosuch'"},
      {"plugins = netstat\n[plugin.netstat]\nrules = 99999 cms 4\n",
       "[plugin.netstat] rules: '99999 cms 4': local port 99999 is not a port (1 to 65535)"},
      {"plugins = netlink\n[plugin.netlink]\nrules = 0 2 9\n",
       "[plugin.netlink] rules: '0 2 9': local port 0 is not a port (1 to 65535)"},
      {"plugins = netlink\n[plugin.netlink]\nrules = 99999999999999999999 2 9\n",
       "[plugin.netlink] rules: '99999999999999999999 2 9': local port 99999999999999999999 is not "
       "a "
       "port (1 to 65535)"},
      {"plugins = netlink\n[plugin.netlink]\nrules = 5201x 2 9\n",
       "[plugin.netlink] rules: '5201x 2 9': expected 'LOCAL_PORT EXPERIMENT ACTIVITY'"},
      {"plugins = netlink\n[plugin.netlink]\nexperiment = 2\nactivity = 9\ninternal_networks = "
       "10.0.0.0/33\n",
       "[plugin.netlink] internal_networks: '10.0.0.0/33'"},
      {"plugins = netlink\n[plugin.netlink]\nrules = 1094 cms Cache, 1094 atlas default\n",
       "[plugin.netlink] rules: '1094 atlas default': local port 1094 has a rule already"},
      {"plugins = kernel\n[plugin.kernel]\nrules = 1094 2 9, 2811 2 9, 1094 2 9\n",
       "[plugin.kernel] rules: '1094 2 9': local port 1094 has a rule already"},
      {"plugins = netlink\n[plugin.netlink]\nexperiment = nosuch\nactivity = 1\n",
       "[plugin.netlink] experiment/activity: unknown experiment 'nosuch'"},
      {"plugins = np_api\nbackends = ebpf\n[plugin.np_api]\npath = " + dir.file("np") +
           "\n[backend.ebpf]\ninterfaces = vc, vc\n",
       "[backend.ebpf] interfaces: 'vc' is listed twice"},
      {"plugins = np_api\nbackends = ebpf\n[plugin.np_api]\npath = " + dir.file("np") +
           "\n[backend.ebpf]\ninterfaces = eth0, ve[\n",
       "[backend.ebpf] interfaces: 've[': the '[' at position 3 opens no bracket expression"},
      {"plugins = np_api\nbackends = ebpf\n[plugin.np_api]\npath = " + dir.file("np") +
           "\n[backend.ebpf]\ninterfaces = ve[!]\n",
       "[backend.ebpf] interfaces: 've[!]': the '[' at position 3 opens no bracket expression"},
  };
  for (const auto& c : cases) {
    dir.write("bad.cfg", head + c.config);
    std::string out, err;
    EXPECT_EQ(run_flowd({"--check-config", "-c", dir.file("bad.cfg")}, out, err), 2) << c.config;
    const std::string expected = "flowd: " + dir.file("bad.cfg") + ": " + c.expected;
    EXPECT_EQ(err.rfind(expected, 0), 0u) << "expected " << expected << "\ngot " << err;
    EXPECT_EQ(err.find(dir.file("bad.cfg")), err.rfind(dir.file("bad.cfg")))
        << "the file is named once: " << err;
  }
  // Patterns whose brackets close are accepted, ']' first in them and [:class:] included.
  dir.write("good.cfg",
            head + "plugins = np_api\nbackends = ebpf\n[plugin.np_api]\npath = " + dir.file("np") +
                "\n[backend.ebpf]\ninterfaces = ve[0-9]*, eth[]x], en[![:digit:]]*, "
                "lo, v?\n");
  std::string out, err;
  EXPECT_EQ(run_flowd({"--check-config", "-c", dir.file("good.cfg")}, out, err), 0) << err;
}

// The original's shipped etc/flowd.cfg (netstat with no experiment) is refused by the check as
// by the start, naming the key.
TEST(Cli, CheckConfigRefusesTheOriginalsShippedFile) {
  TempDir dir;
  dir.write("flowd.cfg",
            "# flowd configuration\n\nPLUGIN='netstat'\nBACKEND='udp_firefly'\n"
            "FLOW_MAP_API='https://www.scitags.org/api.json'\n\n"
            "#NETSTAT_EXPERIMENT='<exp>'\n#NETSTAT_ACTIVITY='<act>'\n");
  std::string out, err;
  EXPECT_EQ(run_flowd({"--check-config", "-c", dir.file("flowd.cfg")}, out, err), 2) << out;
  EXPECT_NE(err.find("[plugin.netstat] experiment"), std::string::npos) << err;
}

// IPERF_FLOW_ID (a list of tuples) and PLUGIN='iperf_rr' convert to the iperf plugin's keys.
TEST(Cli, ConvertConfigTakesIperfRrAndIperfFlowId) {
  TempDir dir;
  dir.write("flowd.cfg",
            "PLUGIN='iperf_rr'\nBACKEND='udp_firefly'\nIPERF_FLOW_ID = [(2, 9), (3, 3)]\n");
  std::string out, err;
  EXPECT_EQ(run_flowd({"--convert-config", dir.file("flowd.cfg")}, out, err), 0) << err;
  EXPECT_NE(out.find("[flowd]\nplugins = iperf\nbackends = udp_firefly\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("[plugin.iperf]\nflow_ids = 2:9, 3:3\nports = 5201-5299\n"), std::string::npos)
      << out;
  dir.write("check.cfg", "WORK_DIR='" + dir.file("") + "'\n" + read_file(dir.file("flowd.cfg")));
  EXPECT_EQ(run_flowd({"--check-config", "-c", dir.file("check.cfg")}, out, err), 0) << err;
}

// Issue 14 (found by a fresh user): the status and flows commands say which option is wrong and
// why, and a server that is not flowd's API is called that, not quoted.
TEST(Cli, StatusAndFlowsSayWhatIsWrong) {
  std::string out, err;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {{"flows", "--address"}, "--address: needs a value, HOST[:PORT]"},
      {{"flows", "--address", ""}, "--address: needs a value, HOST[:PORT]"},
      {{"flows", "--address", "--json"}, "got the option --json instead"},
      {{"status", "--socket", "--json"}, "--socket: needs a value, PATH"},
      {{"flows", "--address", "127.0.0.1:99999"}, "'127.0.0.1:99999' is not HOST[:PORT]"},
      {{"flows", "--limit", "abc"}, "--limit: 'abc' is not a whole number from 1 to 1000000"},
      {{"flows", "--limit", "0"}, "--limit: '0' is not a whole number from 1 to 1000000"},
      {{"flows", "--limit", "-1"}, "--limit: '-1' is not a whole number from 1 to 1000000"},
      {{"analyze", "--max-open", "-1", "-"}, "--max-open: '-1' is not a whole number from 1 to"},
      {{"analyze", "--max-open", "0", "-"}, "--max-open: '0' is not a whole number from 1 to"},
      {{"analyze", "--max-open", "99999999999999999999", "-"}, "is not a whole number from 1 to"},
      {{"analyze", "--buffer", "-3", "-"}, "--buffer: '-3' is not a whole number from 1 to"},
      {{"label", "encode", "atlas", "debug"}, "activity 'debug' is neither"},
      {{"label", "encode", "atlsa", "Debug"}, "experiment 'atlsa' is neither"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(run_flowd(c.args, out, err), 2) << c.args.back();
    EXPECT_NE(err.find(c.says), std::string::npos) << c.args.back() << ": " << err;
  }
  // A file of another kind at --socket (the configuration file, by mistake): not "not running".
  TempDir tmp;
  tmp.write("f.cfg", "[flowd]\n");
  for (const char* cmd : {"status", "flows"}) {
    EXPECT_NE(run_flowd({cmd, "--socket", tmp.file("f.cfg")}, out, err), 0);
    EXPECT_NE(err.find(tmp.file("f.cfg") + " is not a socket"), std::string::npos) << err;
    EXPECT_EQ(err.find("not running"), std::string::npos) << err;
  }
  // Something else answers there: prometheus's exposer of a running flowd, 404 on /v1/status.
  Daemon d;
  d.start(d.config());
  const std::string other = "127.0.0.1:" + std::to_string(d.prom_port);
  for (const char* cmd : {"status", "flows"}) {
    EXPECT_EQ(run_flowd({cmd, "--address", other}, out, err), 1);
    EXPECT_NE(err.find("http://" + other + " is not flowd's API"), std::string::npos) << err;
    EXPECT_NE(err.find("HTTP 404"), std::string::npos) << err;
  }
  EXPECT_EQ(d.stop(), 0);
}

// Issue 15: a file reloaded to `plugins = kernel`, its [plugin.api] section left in it, was said to
// have no [plugin.api] section. Each reason the file runs no API is named as it is: the section
// without `api` in plugins, neither, or `api` listed with no listener; exit 2, no connection tried.
TEST(Cli, StatusAndFlowsSayWhyTheFileRunsNoApi) {
  TempDir dir;
  const std::string head = "[flowd]\nwork_dir = " + dir.file("cache") + "\n";
  const std::string kernel = "[plugin.kernel]\nrules = 1094 2 9\n";
  struct Case {
    std::string config, says;
  } cases[] = {
      {"plugins = kernel\n" + kernel + "[plugin.api]\nsocket = " + dir.file("api.sock") + "\n",
       " has a [plugin.api] section, but 'api' is not in its [flowd] plugins (kernel): a flowd "
       "running this file serves no HTTP API (add api to [flowd] plugins and reload flowd"},
      {"plugins = kernel, netlink\n" + kernel + "[plugin.netlink]\nexperiment = 2\n",
       " does not list 'api' in its [flowd] plugins (kernel, netlink), nor has it a [plugin.api] "
       "section: a flowd running this file serves no HTTP API (add api to [flowd] plugins"},
      {"plugins = kernel, api\n" + kernel + "[plugin.api]\nsocket =\n",
       ": [plugin.api] socket and listen are both empty: the API would listen nowhere"},
  };
  for (const auto& c : cases) {
    dir.write("f.cfg", head + c.config);
    for (const char* cmd : {"flows", "status"}) {
      std::string out, err;
      EXPECT_EQ(run_flowd({cmd, "-c", dir.file("f.cfg")}, out, err), 2) << c.config;
      EXPECT_EQ(err.rfind("flowd: " + dir.file("f.cfg") + c.says, 0), 0u)
          << c.config << "\nexpected: " << c.says << "\ngot: " << err;
    }
  }
  // Listed, with a section or without: it asks where the section says, or at the default socket.
  dir.write("f.cfg", head + "plugins = kernel, api\n" + kernel +
                         "[plugin.api]\nsocket = " + dir.file("api.sock") + "\n");
  std::string out, err;
  EXPECT_EQ(run_flowd({"flows", "-c", dir.file("f.cfg")}, out, err), 1);
  EXPECT_EQ(err.rfind("flowd is not running: nothing answers on the unix socket " +
                          dir.file("api.sock") + " (No such file or directory)",
                      0),
            0u)
      << err;
}

// Issue 15: "flowd is not running" was said of a socket this user may not open and of an address
// that cannot be reached from here; flowd may well run behind either.
TEST(Cli, StatusAndFlowsTellAnUnreachableApiFromAStoppedFlowd) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for network namespaces and setpriv";
  std::string out;
  // An address with no route from here (a namespace with IPv6 only): not "nothing answers".
  {
    NetnsPair net;
    for (const char* cmd : {"flows", "status"}) {
      EXPECT_EQ(net.exec(net.a, flowd_binary() + " " + cmd + " --address 198.18.99.1:8787", out), 1)
          << out;
      EXPECT_EQ(out.rfind("http://198.18.99.1:8787 cannot be reached from here (Network is "
                          "unreachable): whether flowd runs is not known",
                          0),
                0u)
          << out;
    }
  }

  // A socket someone listens on, that only root may open, asked by the user nobody.
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  if (run_shell(as_nobody + "test -x " + flowd_binary(), "", out) != 0)
    GTEST_SKIP() << "the user nobody cannot run " << flowd_binary() << ": " << out;
  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const std::string path = dir.file("api.sock");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_fd{fd};
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_EQ(run_shell(as_nobody + flowd_binary() + " flows --socket " + path, "", out), 1) << out;
  EXPECT_EQ(out.rfind("the unix socket " + path +
                          " may not be opened by this user (Permission denied): flowd may well "
                          "be running",
                      0),
            0u)
      << out;
  EXPECT_EQ(out.find("not running"), std::string::npos) << out;
}

// A wrong number of arguments printed CLI11's raw "args: At Most 3 required but received 4": it is
// a sentence naming the command, followed by the command's usage (issue 15). So is every other
// argument error of every command: CLI11's "file is required", "--socket: 1 required PATH missing",
// "The following argument was not expected: x", "Could not convert: --window = abc" were printed
// as they came.
TEST(Cli, AWrongArgumentCountNamesTheCommandAndItsUsage) {
  struct Case {
    std::vector<std::string> args;
    std::string command;  // as the first line and the usage name it
    std::string says;     // the sentence after "COMMAND: "
  } cases[] = {
      {{"label"}, "flowd label", "needs a command: encode, decode or scitag"},
      {{"label", "bogus", "1"}, "flowd label", "'bogus"},
      {{"label", "decode"}, "flowd label decode", "the argument LABEL is missing (a 20-bit"},
      {{"label", "decode", "1", "2", "3"},
       "flowd label decode",
       "takes LABEL only; '2 3' is more than that"},
      {{"label", "encode"}, "flowd label encode", "the argument EXPERIMENT is missing"},
      {{"label", "encode", "atlas"}, "flowd label encode", "the argument ACTIVITY is missing"},
      {{"label", "scitag"}, "flowd label scitag", "the argument SCITAG is missing"},
      {{"label", "decode", "zz"},
       "flowd label decode",
       "'zz' is not a flow label (a 20-bit number, decimal or 0x hex)"},
      {{"label", "scitag", "99999"}, "flowd label scitag", "'99999' is not a scitag"},
      {{"label", "decode", "0x1000000"}, "flowd label decode", "0x1000000 is out of range"},
      {{"decode"}, "flowd decode", "the argument FILE is missing"},
      {{"decode", "--hex"}, "flowd decode", "the argument FILE is missing"},
      {{"decode", "--bogus", "x"}, "flowd decode", "has no option --bogus"},
      {{"decode", "--bogus"}, "flowd decode", "has no option --bogus"},
      {{"analyze", "--bogus"}, "flowd analyze", "has no option --bogus"},
      {{"analyze"}, "flowd analyze", "the argument FILE is missing"},
      {{"analyze", "--window", "abc", "x"},
       "flowd analyze",
       "--window: 'abc' is not a number of seconds from 0 to 31536000"},
      {{"analyze", "--window", "-5", "x"}, "flowd analyze", "--window: '-5' is not a number of"},
      {{"analyze", "--sort", "foo", "x"},
       "flowd analyze",
       "--sort: must be start, bytes or none, not 'foo'"},
      {{"analyze", "--sort"}, "flowd analyze", "--sort: needs a value, TEXT"},
      {{"status", "--socket"}, "flowd status", "--socket: needs a value, PATH"},
      {{"status", "extra"}, "flowd status", "takes options only, not the argument 'extra'"},
      {{"flows", "--address"}, "flowd flows", "--address: needs a value, HOST[:PORT]"},
      {{"flows", "--limit"}, "flowd flows", "--limit: needs a value, N"},
      {{"flows", "--bogus"}, "flowd flows", "has no option --bogus"},
      {{"bogus"},
       "flowd",
       "'bogus' is not one of its commands (label, decode, analyze, status or "
       "flows)"},
  };
  for (const auto& c : cases) {
    std::string out, err, what;
    for (const auto& a : c.args) what += a + " ";
    EXPECT_EQ(run_flowd(c.args, out, err), 2) << what;
    EXPECT_EQ(err.rfind(c.command + ": " + c.says, 0), 0u) << what << "\n" << err;
    EXPECT_NE(err.find("\nUsage: " + c.command + " "), std::string::npos) << what << "\n" << err;
    EXPECT_NE(err.find("Run '" + c.command + " --help' for more information."), std::string::npos)
        << what << "\n"
        << err;
    for (const char* raw : {"is required", " required ", "not expected", "Could not convert",
                            "At Most", "At least", "(2x)", "args"})
      EXPECT_EQ(err.find(raw), std::string::npos) << what << ": CLI11's text '" << raw << "'\n"
                                                  << err;
  }
  // An option given twice takes its last value (CLI11 refused it, blaming FILE for analyze).
  {
    std::string out, err;
    EXPECT_EQ(run_flowd({"flows", "--limit", "5", "--limit", "x"}, out, err), 2);
    EXPECT_NE(err.find("--limit: 'x' is not a whole number"), std::string::npos) << err;
    EXPECT_EQ(run_flowd({"analyze", "--window", "1", "--window", "2", "-", "-"}, out, err), 0)
        << err;
  }
  // The notes of the command come with its usage.
  std::string out, err;
  EXPECT_EQ(run_flowd({"label"}, out, err), 2);
  EXPECT_NE(err.find("flowd label decode LABEL"), std::string::npos) << err;
}

TEST(Cli, ReadmeHoldsTheConfigReference) {
  std::string out, err;
  ASSERT_EQ(run_flowd({"--config-reference"}, out, err), 0);
  std::string readme = read_file(std::string(FLOWD_SOURCE_DIR) + "/README.md");
  auto b = readme.find("<!-- config-reference:begin -->\n");
  auto e = readme.find("<!-- config-reference:end -->");
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  b += std::string("<!-- config-reference:begin -->\n").size();
  // Regenerate with: flowd --config-reference, pasted between the markers.
  auto rstrip = [](std::string t) {
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t;
  };
  EXPECT_EQ(rstrip(readme.substr(b, e - b)), rstrip(out));
}

}  // namespace
}  // namespace flowd::test
