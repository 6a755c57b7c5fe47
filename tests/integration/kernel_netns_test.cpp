// SPDX-License-Identifier: Apache-2.0
// privileged: the kernel plugin (TCP state changes from a BPF tracepoint) on real connections
// between two network namespaces: 1,000 connections of 20 ms each, every one reported once with
// the kernel's times, against the netlink scanner at its default interval, which misses most; a
// ring buffer forced to overflow, repaired by a resync; the fallback to polling without the
// capabilities BPF needs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "flowd/rfc3339.hpp"
#include "flowd/scitags_label.hpp"
#include "scanner_netns_fixture.hpp"

namespace flowd::test {
namespace {

using Clock = std::chrono::system_clock;

class KernelNetns : public ScannerNetns {
 protected:
  // The kernel plugin checks what it follows against a dump every second here (30 s by default):
  // the kernel now and then runs its program for none of a closing connection's state changes,
  // without counting it, on a loaded machine (the suite in parallel); the check ends such a
  // connection well within the tests' 3 s wait for events.
  std::string config(const std::string& plugin, const std::string& keys,
                     const std::string& prom_extra = "") const {
    return ScannerNetns::config(plugin, plugin == "kernel" ? keys + "resync_interval = 1s\n" : keys,
                                prom_extra);
  }

  // A listener in namespace b that never accepts: the handshake completes into its queue (4096
  // deep), so a client is ESTABLISHED at once and closing it leaves the peer in CLOSE_WAIT.
  int listen_in_b(Fds& fds, int port) {
    NetnsScope in_b(net->b);
    int fd = tcp_listen("198.18.0.2", port);
    if (fd >= 0) ::listen(fd, 4096);
    return fds.add(fd);
  }

  // A listener in namespace a (flowd's) on [::]:port, for connections from namespace b.
  int listen_in_a(Fds& fds, int port) {
    NetnsScope in_a(net->a);
    return fds.add(tcp_listen("::", port));
  }

  // Opens `count` connections from namespace a to 198.18.0.2:port in batches small enough for a
  // 4 KiB ring (46 records), each batch's starts received before the next; the clients, and their
  // local ports in `ports`.
  std::vector<int> open_in_batches(int port, int count, std::vector<int>& ports) {
    std::vector<int> clients;
    for (int done = 0; done < count;) {
      const int batch = std::min(20, count - done);
      {
        NetnsScope in_a(net->a);
        for (int i = 0; i < batch; ++i) {
          int local = 0;
          int fd = tcp_connect("198.18.0.2", port, &local);
          if (fd < 0) return clients;
          clients.push_back(fd);
          ports.push_back(local);
        }
      }
      done += batch;
      events(static_cast<std::size_t>(batch), 1000ms);
    }
    return clients;
  }

  // Closes `clients` (flowd stopped: its ring overflows with their ends), lets flowd go on, and
  // checks that each of `ports` ended once, with no second start and a loss counted; the scrape.
  std::string close_and_expect_each_ended_once(const std::vector<int>& clients,
                                               const std::vector<int>& ports) {
    for (int fd : clients) ::close(fd);
    proc->signal(SIGCONT);
    auto closed = tally(events(ports.size(), 3000ms), 2, 9);
    EXPECT_EQ(unpaired_ends(ports, closed), "") << proc->log();
    EXPECT_TRUE(closed.starts.empty()) << "no connection started twice";
    std::string m = scrape();
    EXPECT_GT(counter(m, "flowd_kernel_events_lost_total"), 0) << m;
    return m;
  }

  // `count` connections from namespace a to 198.18.0.2:port over `threads` threads, each held
  // `hold` after connect() and then closed; the clients' local ports.
  std::vector<int> short_connections(int port, int count, int threads,
                                     std::chrono::milliseconds hold) {
    std::vector<int> ports;
    std::mutex mu;
    std::vector<std::jthread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        NetnsScope in_a(net->a);
        for (int i = t; i < count; i += threads) {
          int local = 0;
          int fd = tcp_connect("198.18.0.2", port, &local);
          if (fd < 0) continue;
          std::this_thread::sleep_for(hold);
          ::close(fd);
          std::lock_guard lock(mu);
          ports.push_back(local);
        }
      });
    pool.clear();
    return ports;
  }

  struct Tally {
    std::vector<Event> events;        // all, in arrival order
    std::map<int, int> starts, ends;  // by client port
    std::map<int, Event> last_end;
    int wrong_tag = 0;
  };
  Tally tally(const std::vector<Event>& events, int exp, int act) const {
    Tally t;
    t.events = events;
    for (const auto& e : events) {
      if (e.exp != exp || e.act != act) ++t.wrong_tag;
      if (e.state == "start") ++t.starts[e.src_port];
      if (e.state == "end") {
        ++t.ends[e.src_port];
        t.last_end[e.src_port] = e;
      }
    }
    return t;
  }

  // For a failure message: the client ports (of `ports`, each as often as it was used) whose
  // starts or ends are not one per use, with their events.
  static std::string unpaired(const std::vector<int>& ports, const Tally& t) {
    std::map<int, int> uses;
    for (int p : ports) ++uses[p];
    std::string out;
    for (auto [p, n] : uses) {
      auto starts = t.starts.find(p), ends = t.ends.find(p);
      const int s = starts == t.starts.end() ? 0 : starts->second;
      const int e = ends == t.ends.end() ? 0 : ends->second;
      if (s == n && e == n) continue;
      out += fmt::format("port {} ({} connection(s)): {} start(s), {} end(s)\n", p, n, s, e);
      for (const auto& ev : t.events)
        if (ev.src_port == p)
          out += fmt::format("  {} start {} end {}\n", ev.state, ev.start_time, ev.end_time);
    }
    return out;
  }

  // For a failure message: flowd's counters along the way of a connection event (read from the
  // ring, published, dropped by the bus, sent as fireflies), so that a missing event says where it
  // went missing.
  std::string pipeline_counts() const {
    std::string out = "flowd's counters:\n";
    std::istringstream in(scrape());
    for (std::string line; std::getline(in, line);)
      if (line.rfind("flowd_kernel_", 0) == 0 || line.rfind("flowd_flow_events_total", 0) == 0 ||
          line.rfind("flowd_bus_dropped", 0) == 0 || line.rfind("flowd_firefl", 0) == 0 ||
          line.rfind("flowd_local_flow_arbiter", 0) == 0)
        out += "  " + line + "\n";
    return out;
  }

  // The ports of `ports` that did not end exactly once, for a failure message ("" when all did).
  static std::string unpaired_ends(const std::vector<int>& ports, const Tally& t) {
    std::string out;
    for (int p : ports)
      if (auto it = t.ends.find(p); it == t.ends.end() || it->second != 1)
        out += fmt::format("port {}: {} end(s)\n", p, it == t.ends.end() ? 0 : it->second);
    return out;
  }

  double counter(const std::string& m, const std::string& name) const {
    return metric_value(m, name).value_or(-1);
  }

  // config() with the ebpf marker on namespace a's end of the pair beside the other backends.
  std::string config_with_marker(const std::string& plugin, const std::string& keys) const {
    std::string cfg = config(plugin, keys);
    const std::string backends = "backends = udp_firefly, prometheus";
    cfg.replace(cfg.find(backends), backends.size(), backends + ", ebpf");
    return cfg + "[backend.ebpf]\ninterfaces = " + net->veth_a + "\npin_path =\n";
  }

  struct Segment {
    int sport = 0, dport = 0, len = 0;
    unsigned flags = 0;
    std::uint32_t label = 0;
  };
  // The TCP segments from namespace a's port `port` in a capture, in order.
  std::vector<Segment> segments_from(const std::string& pcap, int port) const {
    std::string out;
    run_shell("tshark -r " + pcap + " -Y 'tcp.srcport == " + std::to_string(port) +
                  "' -T fields -E separator=';' -e tcp.srcport -e tcp.dstport -e tcp.flags -e "
                  "tcp.len -e ipv6.flow 2>/dev/null",
              "", out);
    std::vector<Segment> segs;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> f;
      std::stringstream ls(line);
      for (std::string x; std::getline(ls, x, ';');) f.push_back(x);
      if (f.size() < 5 || f[4].empty()) continue;
      Segment g;
      g.sport = std::atoi(f[0].c_str());
      g.dport = std::atoi(f[1].c_str());
      g.flags = static_cast<unsigned>(std::stoul(f[2], nullptr, 16));
      g.len = std::atoi(f[3].c_str());
      g.label = static_cast<std::uint32_t>(std::stoul(f[4], nullptr, 16));
      segs.push_back(g);
    }
    return segs;
  }

  void start_iperf3_server(const std::string& ns, const std::string& prefix = "");
  std::map<std::pair<int, int>, std::vector<Event>> owned_flows(const std::vector<Event>& ev) const;

  // A client in namespace b connects to [server]:port in namespace a, whose accepted socket sends
  // "first" at once and, `later` after, "later". Returns the client's port.
  int serve_one(int listener, const std::string& server, int port,
                std::chrono::milliseconds later) {
    int client_port = 0, client = -1;
    {
      NetnsScope in_b(net->b);
      client = tcp_connect(server, port, &client_port);
    }
    EXPECT_GE(client, 0);
    int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    EXPECT_GE(conn, 0);
    EXPECT_EQ(::send(conn, "first", 5, 0), 5);
    char buf[16];
    EXPECT_EQ(::recv(client, buf, sizeof buf, 0), 5);
    std::this_thread::sleep_for(later);
    EXPECT_EQ(::send(conn, "later", 5, 0), 5);
    EXPECT_EQ(::recv(client, buf, sizeof buf, 0), 5);
    ::close(conn);
    ::close(client);
    return client_port;
  }
};

constexpr int kConnections = 1000;
// The smallest ring: 46 records of 88 bytes, easy to overflow on purpose.
const std::string kSmallRing = "ring_buffer_size = 4096\n";
// Loopback (the scrapes) is not a flow of the test.
const std::string kTagKeys =
    "experiment = 2\nactivity = 9\nignore_private = no\ninternal_networks = 127.0.0.0/8\n";

TEST_F(KernelNetns, EveryShortConnectionOnceWithKernelTimesWhereNetlinkMissesMost) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  auto t0 = Clock::now();
  auto ports = short_connections(5000, kConnections, 10, 20ms);
  auto t1 = Clock::now();
  ASSERT_EQ(ports.size(), static_cast<std::size_t>(kConnections));
  auto kernel = tally(events(2 * kConnections, 3000ms), 2, 9);
  int exactly_once = 0, timed_right = 0;
  for (int p : ports) {
    if (kernel.starts[p] == 1 && kernel.ends[p] == 1) ++exactly_once;
    // The end firefly carries both kernel times: the connection lived its 20 ms (plus the
    // scheduler's delays), inside the test's window.
    const auto& e = kernel.last_end[p];
    auto start = parse_rfc3339(e.start_time), end = parse_rfc3339(e.end_time);
    if (start && end && *end - *start >= 20ms && *end - *start < 2s && *start >= t0 - 1ms &&
        *end <= t1 + 200ms)
      ++timed_right;
  }
  EXPECT_EQ(exactly_once, kConnections)
      << unpaired(ports, kernel) << pipeline_counts() << proc->log();
  EXPECT_EQ(kernel.starts.size(), static_cast<std::size_t>(kConnections)) << "no other starts";
  EXPECT_EQ(kernel.wrong_tag, 0);
  std::string m = scrape();
  // A state change that comes (in a softirq) while the program runs on the same CPU is skipped by
  // BPF's recursion guard: a handful in 1,000 connections' ends (at CLOSE, mostly in softirq). Each
  // is counted and repaired by a resync, whose start or end has the dump's time instead.
  const double missed = counter(m, "flowd_kernel_events_missed_total");
  std::cout << "state changes the kernel skipped the program for: " << missed << "\n";
  const double unreported_ends = counter(m, "flowd_kernel_unreported_total{state=\"end\"}");
  std::cout << "ends the kernel did not report, found by the periodic resync: " << unreported_ends
            << "\n";
  // A resync that repairs a counted loss restarts resync_interval: at least one of either kind.
  EXPECT_GE(
      counter(m, "flowd_kernel_periodic_resyncs_total") + counter(m, "flowd_kernel_resyncs_total"),
      1)
      << m;
  // A loaded machine (the test suite run in parallel) gives a few in 1,000 ends the time of a
  // resync instead: skipped and counted (missed), or skipped silently and ended by the periodic
  // resync (unreported_ends); each still has its one end.
  EXPECT_GE(timed_right, kConnections - static_cast<int>(missed + unreported_ends) - 10)
      << "start and end are the kernel's, to the millisecond";
  EXPECT_EQ(counter(m, "flowd_kernel_events_lost_total"), 0) << m;
  EXPECT_EQ(counter(m, "flowd_kernel_resyncs_total") > 0, missed > 0) << m;
  EXPECT_GE(counter(m, "flowd_kernel_events_total") + missed, 2 * kConnections - 10);

  // The same load against the netlink scanner at its default interval (2 s).
  fds.fds.clear();  // closing the listener resets what its queue holds
  ASSERT_GE(listen_in_b(fds, 5001), 0);
  start_flowd(config("netlink", kTagKeys));
  ports = short_connections(5001, kConnections, 10, 20ms);
  ASSERT_EQ(ports.size(), static_cast<std::size_t>(kConnections));
  auto polled = tally(events(2 * kConnections, 3000ms), 2, 9);
  int caught = 0;
  for (int p : ports) caught += polled.starts[p] > 0;
  std::cout << "1,000 connections of 20 ms: kernel plugin reported " << exactly_once
            << " (start and end), netlink scanner at 2 s saw " << caught << "\n";
  RecordProperty("kernel_reported", exactly_once);
  RecordProperty("netlink_caught", caught);
  EXPECT_LT(caught, kConnections / 10) << "a 2 s poll sees only what is open at its instant";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// A connection that leaves ESTABLISHED straight for CLOSE (an abortive close: SO_LINGER 0, close()
// with unread data, a RST from the peer) gets its `end`. At that state change the kernel has
// already released the local port (tcp_set_state(TCP_CLOSE) calls inet_put_port, which zeroes
// skc_num, before the tracepoint fires): the program reads inet_sport instead. Found by a new
// user's try: the record's local port was 0, so neither the tracker nor the first-packet unmark
// found the connection, and it stayed active for ever.
TEST_F(KernelNetns, AnAbortiveCloseEndsTheConnection) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5006), 0);
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  constexpr int kAborted = 20;
  std::vector<int> ports;
  {
    NetnsScope in_a(net->a);
    for (int i = 0; i < kAborted; ++i) {
      int local = 0;
      int fd = tcp_connect("198.18.0.2", 5006, &local);
      ASSERT_GE(fd, 0);
      linger l{1, 0};  // close() sends a RST: ESTABLISHED -> CLOSE
      ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
      ::close(fd);
      ports.push_back(local);
    }
  }
  auto t = tally(events(2 * kAborted, 3000ms), 2, 9);
  int ended = 0;
  for (int p : ports) ended += t.starts[p] == 1 && t.ends[p] == 1;
  EXPECT_EQ(ended, kAborted) << proc->log();
  EXPECT_LE(counter(scrape(), "flowd_kernel_tracked_connections"), 2) << "nothing left open";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Stops flowd and returns once every one of its threads is stopped: kill() returns before the
// signal has reached them, and a reader thread still running would drain the ring.
void stop_all_threads(FlowdProcess& p) {
  p.signal(SIGSTOP);
  const std::string tasks = "/proc/" + std::to_string(p.pid()) + "/task";
  for (int i = 0; i < 500; ++i) {
    bool all = true;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream in(t.path() / "stat");
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') {
        all = false;
        break;
      }
    }
    if (all) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ADD_FAILURE() << "flowd's threads did not all stop";
}

// The ring is made to overflow deterministically: flowd is stopped (SIGSTOP) while connections
// open, so the 4 KiB ring (46 records of 88 bytes) fills and the kernel refuses the rest. What is
// guaranteed after the resync: every connection open at the resync has exactly one start, and every
// started connection exactly one end (its event, or the resync that finds it closing or gone). A
// connection opened and closed entirely while records were lost cannot be reported: it is in
// flowd_kernel_events_lost_total.
// A reload that restarts the plugin (its section changed) while connections come and go: each gets
// exactly one start and one end. The stopped plugin's program stays attached until its successor's
// is, and the successor reads its ring first; before, connections established in the gap were
// adopted silently (found by a new user's try: 193 of 199).
TEST_F(KernelNetns, AReloadThatRestartsThePluginMissesNoConnection) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5008), 0);
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  std::vector<int> ports;
  std::jthread load([&] { ports = short_connections(5008, 300, 4, 40ms); });
  usleep(700000);
  for (int round = 0; round < 2; ++round) {
    // A changed section restarts the plugin; the new network is one the test does not use.
    std::string cfg = config("kernel",
                             "experiment = 2\nactivity = 9\nignore_private = no\n"
                             "internal_networks = 127.0.0.0/8, 10.9" +
                                 std::to_string(round) + ".0.0/16\n");
    dir.write("flowd.cfg", cfg);
    proc->signal(SIGHUP);
    usleep(800000);
  }
  load.join();
  ASSERT_EQ(ports.size(), 300u);
  auto t = tally(events(600, 3000ms), 2, 9);
  int once = 0;
  for (int p : ports) once += t.starts[p] == 1 && t.ends[p] == 1;
  EXPECT_EQ(once, 300) << unpaired(ports, t) << pipeline_counts() << proc->log();
  EXPECT_EQ(t.starts.size(), 300u) << "no other starts";
  EXPECT_NE(proc->log().find("followed on from before the reload"), std::string::npos)
      << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// The same with connections so short that many open and close while both programs are attached:
// each state change of that overlap is in both rings and is handed once. Before, the old ring was
// cut by time and the new one read whole, so a connection opened and closed in the overlap started
// and ended twice (CI: 2 of 300 in the test above).
TEST_F(KernelNetns, ConnectionsOpenedAndClosedWhileTwoProgramsOverlapAreHandedOnce) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5009), 0);
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  constexpr int kConnections = 3000;
  std::vector<int> ports;
  std::atomic<bool> done{false};
  std::jthread load([&] {
    ports = short_connections(5009, kConnections, 4, 1ms);
    done = true;
  });
  int reloads = 0;
  for (; !done && reloads < 40; ++reloads) {
    dir.write("flowd.cfg", config("kernel",
                                  "experiment = 2\nactivity = 9\nignore_private = no\n"
                                  "internal_networks = 127.0.0.0/8, 10.9" +
                                      std::to_string(reloads % 10) + ".0.0/16\n"));
    proc->signal(SIGHUP);
    usleep(40000);
  }
  load.join();
  ASSERT_EQ(ports.size(), static_cast<std::size_t>(kConnections));
  EXPECT_GE(reloads, 3) << "the connections outlasted a few reloads";
  auto t = tally(events(2 * kConnections, 3000ms), 2, 9);
  // A client port may serve two connections of the run (the kernel reuses it): each gets its own.
  std::map<int, int> uses;
  for (int p : ports) ++uses[p];
  int twice = 0;
  for (auto [p, n] : uses) twice += t.starts[p] > n || t.ends[p] > n;
  EXPECT_EQ(twice, 0) << reloads << " reloads\n"
                      << unpaired(ports, t) << pipeline_counts() << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15f D1: 4-tuples reused within milliseconds (clients that bind their source port; the
// server closes first, so its TIME-WAIT takes the next SYN) while reloads restart the plugin. The
// successor's dump was used before the records its ring held already: it took the newest socket
// on the tuple for a new one and ended the followed one at the dump's time, then the older records
// ended and started again: an extra zero-length start and end per hit, in 3 of 3 runs of 8,000.
TEST_F(KernelNetns, AFourTupleReusedWithinMillisecondsAcrossReloadsIsReportedOncePerConnection) {
  Fds fds;
  int listener;
  {
    NetnsScope in_b(net->b);
    listener = fds.add(tcp_listen("198.18.0.2", 5010));
  }
  ASSERT_GE(listener, 0);
  std::atomic<bool> done{false};
  std::atomic<bool> enough{false};
  std::atomic<int> connections{0};
  std::jthread server([&] {  // accepts and closes at once: the server sends the first FIN
    while (!done) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      if (int c = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC); c >= 0) ::close(c);
    }
  });
  // A ring of 8 MiB: thousands of state changes a second through reloads, beside another test's
  // load, overflowed the default 1 MiB (a connection opened and closed while records were lost
  // cannot be reported, which is not what this test is about).
  const std::string ring = "ring_buffer_size = 8388608\n";
  start_flowd(config("kernel", kTagKeys + ring), "following TCP state changes");
  // Four clients, each on its own fixed source port, as fast as the handshakes go.
  constexpr int kClients = 4, kSport = 40010, kConnections = 8000;
  std::vector<int> per_port(kClients, 0);
  std::vector<std::jthread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      NetnsScope in_a(net->a);
      sockaddr_in me{}, to{};
      me.sin_family = to.sin_family = AF_INET;
      me.sin_port = htons(static_cast<std::uint16_t>(kSport + i));
      to.sin_port = htons(5010);
      ::inet_pton(AF_INET, "198.18.0.1", &me.sin_addr);
      ::inet_pton(AF_INET, "198.18.0.2", &to.sin_addr);
      while (!enough && connections < kConnections) {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&me), sizeof me) != 0 ||
            ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
          ::close(fd);
          std::this_thread::sleep_for(1ms);
          continue;
        }
        char buf[8];
        while (::recv(fd, buf, sizeof buf, 0) > 0) {
        }  // to the server's FIN
        ::close(fd);
        ++per_port[static_cast<std::size_t>(i)];
        ++connections;
      }
    });
  int reloads = 0;
  for (; reloads < 80 && connections < kConnections; ++reloads) {
    dir.write("flowd.cfg", config("kernel",
                                  "experiment = 2\nactivity = 9\nignore_private = no\n"
                                  "internal_networks = 127.0.0.0/8, 10.9" +
                                      std::to_string(reloads % 10) + ".0.0/16\n" + ring));
    proc->signal(SIGHUP);
    usleep(30000);
  }
  enough = true;
  clients.clear();
  done = true;
  ASSERT_GE(connections, 500) << "the 4-tuple was reused often enough";
  std::cerr << connections << " connections on " << kClients << " 4-tuples, " << reloads
            << " reloads\n";
  // Counted where the plugin publishes: thousands of fireflies a second may overflow the test's
  // UDP receiver (under ASan flowd sends them in bursts), which is not what this test is about.
  const std::string starts =
      "flowd_flow_events_total{origin=\"local\",plugin=\"kernel\",state=\"start\"}";
  const std::string ends =
      "flowd_flow_events_total{origin=\"local\",plugin=\"kernel\",state=\"end\"}";
  std::string m;
  for (int i = 0; i < 100; ++i) {  // the last ends come at the next periodic resync at most
    m = scrape();
    if (counter(m, ends) >= connections) break;
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(1500ms);  // an extra pair, if any, after the last end
  m = scrape();
  EXPECT_EQ(counter(m, starts), connections.load()) << reloads << " reloads\n" << pipeline_counts();
  EXPECT_EQ(counter(m, ends), connections.load());
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15f D3: the periodic check ran only at the once-a-second read of the ring, just short of the
// interval after the last: `resync_interval = 1s` checked every 2 s or so (13 in 20 s). It has a
// timer of its own now.
TEST_F(KernelNetns, ThePeriodicResyncKeepsItsIntervalNotTheNextSecondAfterIt) {
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  const double before = counter(scrape(), "flowd_kernel_periodic_resyncs_total");
  std::this_thread::sleep_for(8s);
  const double checks = counter(scrape(), "flowd_kernel_periodic_resyncs_total") - before;
  EXPECT_GE(checks, 7) << "resync_interval = 1s for 8 s";
  EXPECT_LE(checks, 9);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Sockets in TIME-WAIT when flowd starts get no further state change from the kernel: they are not
// followed (before, the adoption dump kept each in flowd_kernel_tracked_connections for ever).
TEST_F(KernelNetns, TimeWaitSocketsAtStartAreNotFollowed) {
  Fds fds;
  int listener;
  {
    NetnsScope in_b(net->b);
    listener = fds.add(tcp_listen("198.18.0.2", 5004));
  }
  ASSERT_GE(listener, 0);
  constexpr int kClosed = 40;
  for (int i = 0; i < kClosed; ++i) {
    int client;
    {
      NetnsScope in_a(net->a);
      client = tcp_connect("198.18.0.2", 5004);
    }
    ASSERT_GE(client, 0);
    int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn, 0);
    ::close(client);  // the client closes first: namespace a's socket ends in TIME-WAIT
    ::close(conn);
  }
  std::string out;
  for (int i = 0; i < 100; ++i) {
    net->exec(net->a, "ss -Htan state time-wait | wc -l", out);
    if (std::atoi(out.c_str()) >= kClosed) break;
    usleep(20000);
  }
  ASSERT_GE(std::atoi(out.c_str()), kClosed) << "TIME-WAIT sockets in namespace a";
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  EXPECT_NE(proc->log().find("0 connections adopted"), std::string::npos) << proc->log();
  // At most the scrape's own connection (loopback, ignored; both its ends are here) is followed.
  EXPECT_LE(counter(scrape(), "flowd_kernel_tracked_connections"), 2);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

TEST_F(KernelNetns, RingBufferOverflowIsCountedAndRepairedByAResync) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  start_flowd(config("kernel", kTagKeys + "ring_buffer_size = 4096\n"),
              "following TCP state changes");
  constexpr int kHeld = 300;
  std::vector<int> clients, ports;
  stop_all_threads(*proc);
  {
    NetnsScope in_a(net->a);
    for (int i = 0; i < kHeld; ++i) {
      int local = 0;
      int fd = tcp_connect("198.18.0.2", 5000, &local);
      ASSERT_GE(fd, 0);
      clients.push_back(fd);
      ports.push_back(local);
    }
  }
  proc->signal(SIGCONT);
  auto opened = tally(events(kHeld), 2, 9);
  std::string m = scrape();
  double lost = counter(m, "flowd_kernel_events_lost_total");
  EXPECT_GE(lost, kHeld - 46) << m;
  double resyncs = counter(m, "flowd_kernel_resyncs_total");
  EXPECT_GE(resyncs, 1) << m;
  int started_once = 0;
  for (int p : ports) started_once += opened.starts[p] == 1;
  EXPECT_EQ(started_once, kHeld) << proc->log();
  EXPECT_EQ(opened.starts.size(), static_cast<std::size_t>(kHeld));
  EXPECT_NE(proc->log().find("resyncing with a sock_diag dump"), std::string::npos);

  // The ends overflow too. They come at the peer's acknowledgment of each FIN, in a softirq: on a
  // loaded machine ksoftirqd may run them only after flowd went on (CI: all 300 read, none lost),
  // so flowd goes on once the kernel lists them all in FIN-WAIT-2.
  stop_all_threads(*proc);
  for (int fd : clients) ::close(fd);
  for (int i = 0; i < 200; ++i) {
    std::string out;
    net->exec(net->a, "ss -tnH state fin-wait-2 '( dport = :5000 )'", out);
    if (std::count(out.begin(), out.end(), '\n') >= kHeld) break;
    std::this_thread::sleep_for(10ms);
  }
  proc->signal(SIGCONT);
  auto closed = tally(events(kHeld), 2, 9);
  int ended_once = 0;
  for (int p : ports) ended_once += closed.ends[p] == 1;
  EXPECT_EQ(ended_once, kHeld) << proc->log();
  EXPECT_TRUE(closed.starts.empty()) << "no connection started twice";
  m = scrape();
  EXPECT_GT(
      counter(m, "flowd_kernel_events_lost_total") + counter(m, "flowd_kernel_events_missed_total"),
      lost)
      << m;
  EXPECT_GE(counter(m, "flowd_kernel_resyncs_total"), resyncs + 1) << m;
  // The resync found them in FIN-WAIT-2 (the peer never closes): no further event comes for such a
  // socket, so the resync forgets it (before, each stayed tracked until a later resync).
  EXPECT_LE(counter(m, "flowd_kernel_tracked_connections"), 2) << m;

  // Events flow again afterwards (IPv6 this time: the record's addresses as the socket's).
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("::", 5002)), 0);
  }
  int port = 0, fd;
  {
    NetnsScope in_a(net->a);
    fd = fds.add(tcp_connect(net->addr_b, 5002, &port));
  }
  ASSERT_GE(fd, 0);
  auto after = events(1);
  ASSERT_EQ(after.size(), 1u) << proc->log();
  EXPECT_EQ(after[0].src_port, port);
  EXPECT_EQ(after[0].state, "start");
  EXPECT_EQ(after[0].src, net->addr_a);
  EXPECT_EQ(after[0].dst, net->addr_b);
  EXPECT_EQ(after[0].dst_port, 5002);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Marked from the first packet: with the ebpf marker in the same flowd, the kernel plugin's BPF
// program puts a connection matching a port rule into the marker's map at its state change, so the
// server's first data segment on the wire already carries the label (read by tcpdump in the peer
// namespace). A connection the plugin does not report (internal_networks) is never marked, not even
// its first segments (the program looks its peer up in the unmarked networks; a new user saw the
// handshake's last ACK leave labelled when user space took the mark out afterwards). The netlink
// scanner, polling every 2 s, leaves the first segment unmarked and marks later ones.
TEST_F(KernelNetns, APortRuleMarksTheFirstDataPacketWhereTheNetlinkScannerDoesNot) {
  const std::string keys =
      "rules = 5201 2 9\nignore_private = no\ninternal_networks = 127.0.0.0/8, fd00:f10e::/64\n";
  const std::uint32_t tag = make_label(2, 9, 0);
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  start_flowd(config_with_marker("kernel", keys), "following TCP state changes");
  EXPECT_NE(proc->log().find("marking from the first packet"), std::string::npos) << proc->log();
  const std::string pcap = dir.file("kernel.pcap");
  auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
  int port = serve_one(listener, net->addr_a, 5201, 0ms);
  // internal_networks: not marked at all.
  int internal = serve_one(listener, "fd00:f10e::1", 5201, 300ms);
  std::this_thread::sleep_for(300ms);  // a loaded machine's tcpdump writes the last segments late
  dump->stop();
  auto ev = events(2);
  ASSERT_EQ(ev.size(), 2u) << proc->log();
  EXPECT_EQ(ev[0].state, "start");
  EXPECT_EQ(ev[0].dst_port, port);
  EXPECT_EQ(ev[1].state, "end");
  std::vector<Segment> data, synack, internal_later;
  for (const auto& g : segments_from(pcap, 5201)) {
    if (g.dport == port && g.len > 0) data.push_back(g);
    if (g.dport == port && (g.flags & 0x12) == 0x12) synack.push_back(g);
    if (g.dport == internal) internal_later.push_back(g);
  }
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(data[0].label & kLabelSemanticMask, tag)
      << "the first data segment carries the label: 0x" << std::hex << data[0].label;
  EXPECT_EQ(data[1].label, data[0].label) << "one flow, one label: user space kept the kernel's";
  ASSERT_EQ(synack.size(), 1u);
  std::cout << "SYN-ACK label 0x" << std::hex << synack[0].label << std::dec
            << " (sent from the request socket, before the state change)\n";
  ASSERT_GE(internal_later.size(), 3u) << "SYN-ACK and two data segments";
  for (const auto& g : internal_later)
    EXPECT_NE(g.label & kLabelSemanticMask, tag)
        << "an internal connection's segment is labelled: flags 0x" << std::hex << g.flags;
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_kernel_first_packet_marks_total"), 1) << m;
  EXPECT_EQ(counter(m, "flowd_kernel_first_packet_unmarks_total"), 0) << m;
  EXPECT_EQ(counter(m, "flowd_marker_flows"), 0) << "both ended: nothing left in the map";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);

  // The netlink scanner at its default interval: the first segment leaves unmarked; once a scan
  // saw the connection (within 2 s), the next one is marked.
  start_flowd(config_with_marker("netlink", keys));
  std::ostringstream seen;
  data.clear();
  // On a loaded machine tcpdump has, about one run in five, missed segments of the connection (the
  // SYN-ACK and the later segment both absent, the client having received both): a capture that
  // lacks a segment is taken again with a new connection, up to three times.
  for (int attempt = 0; attempt < 3 && data.size() != 2; ++attempt) {
    dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
    port = serve_one(listener, net->addr_a, 5201, 2500ms);
    std::this_thread::sleep_for(300ms);  // a loaded machine's tcpdump writes the last segments late
    dump->stop();
    data.clear();
    seen << "attempt " << attempt + 1 << ", client port " << port << ":\n";
    for (const auto& g : segments_from(pcap, 5201)) {
      seen << g.sport << "->" << g.dport << " flags 0x" << std::hex << g.flags << " len "
           << std::dec << g.len << " label 0x" << std::hex << g.label << std::dec << "\n";
      if (g.dport == port && g.len > 0) data.push_back(g);
    }
  }
  ASSERT_EQ(data.size(), 2u) << seen.str() << proc->log();
  EXPECT_NE(data[0].label & kLabelSemanticMask, tag)
      << "polled: the first data segment leaves before any scan saw the connection";
  EXPECT_EQ(data[1].label & kLabelSemanticMask, tag) << "and the scan marks it later";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15c item 9: a connection carries data until it reaches CLOSE. The client (namespace b)
// sends its request and shuts its side down (shutdown(SHUT_WR), HTTP/1.0-style): the server
// (namespace a, a port rule) reads to the end in CLOSE-WAIT, then sends its answer, whose tail and
// FIN leave in LAST-ACK. Every data segment of the answer carries the label on the wire (tcpdump in
// namespace b), and the flow's one `end` comes at CLOSE, after the answer. Before, the flow ended
// and the program took the mark out when the socket left ESTABLISHED (the client's FIN): the
// answer left unmarked.
TEST_F(KernelNetns, AHalfClosedConnectionIsMarkedUntilItCloses) {
  const std::string keys =
      "rules = 5301 2 9\nignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  const std::uint32_t tag = make_label(2, 9, 0);
  Fds fds;
  const int listener = listen_in_a(fds, 5301);
  ASSERT_GE(listener, 0);
  start_flowd(config_with_marker("kernel", keys), "following TCP state changes");
  const std::string pcap = dir.file("halfclose.pcap");
  auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
  int client_port = 0, client;
  {
    NetnsScope in_b(net->b);
    client = fds.add(tcp_connect(net->addr_a, 5301, &client_port));
  }
  ASSERT_GE(client, 0);
  int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  ASSERT_EQ(::send(client, "request", 7, 0), 7);
  ASSERT_EQ(::shutdown(client, SHUT_WR), 0);
  char buf[4096];
  std::size_t request = 0;
  for (ssize_t n; (n = ::recv(conn, buf, sizeof buf, 0)) > 0;)
    request += static_cast<std::size_t>(n);
  ASSERT_EQ(request, 7u) << "the server read the request to its end: CLOSE-WAIT";
  constexpr std::size_t kAnswer = 256 * 1024;
  std::size_t received = 0;
  std::jthread reader([&] {
    for (ssize_t n; (n = ::recv(client, buf, sizeof buf, 0)) > 0;)
      received += static_cast<std::size_t>(n);
  });
  std::this_thread::sleep_for(100ms);  // the client's FIN is well processed: the server is in
                                       // CLOSE-WAIT, the old program's end long done
  const std::string answer(kAnswer, 'x');
  for (std::size_t sent = 0; sent < answer.size();) {
    ssize_t n = ::send(conn, answer.data() + sent, answer.size() - sent, 0);
    ASSERT_GT(n, 0);
    sent += static_cast<std::size_t>(n);
  }
  ::close(conn);  // LAST-ACK, with what is still queued
  reader.join();
  EXPECT_EQ(received, kAnswer);
  auto ev = events(2);
  std::this_thread::sleep_for(300ms);  // a loaded machine's tcpdump writes the last segments late
  dump->stop();
  ASSERT_EQ(ev.size(), 2u) << proc->log();
  EXPECT_EQ(ev[0].state, "start");
  EXPECT_EQ(ev[1].state, "end");
  EXPECT_EQ(ev[1].dst_port, client_port);
  std::size_t bytes = 0, unmarked = 0, fins = 0;
  for (const auto& g : segments_from(pcap, 5301)) {
    if (g.dport != client_port) continue;
    if (g.len > 0) bytes += static_cast<std::size_t>(g.len);
    if ((g.flags & 0x01) != 0) ++fins;
    if ((g.len > 0 || (g.flags & 0x01) != 0) && (g.label & kLabelSemanticMask) != tag) ++unmarked;
  }
  // A loaded machine retransmits now and then (CI saw 274,996 bytes for 262,144): counted too, and
  // they must carry the label as well.
  EXPECT_GE(bytes, kAnswer) << "the whole answer captured";
  EXPECT_GE(fins, 1u);
  EXPECT_EQ(unmarked, 0u) << "every data segment and the FIN of the answer carry the label";
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_marker_flows"), 0) << "the mark went at CLOSE\n" << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// A marker added by a reload that keeps the kernel plugin running (its section unchanged): the
// plugin follows the marker's map at its next connection event and marks from the first packet
// from then on; the log says so. Before, it did not until it restarted (the marker's reload said
// so), and a marker's map that came back after match_all was never followed (report try15c item
// 6). A reload that restarts the plugin takes the map at its start.
TEST_F(KernelNetns, AMarkerAddedByAReloadIsFollowedByTheKeptPlugin) {
  const std::string keys = kTagKeys;
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  start_flowd(config("kernel", keys), "following TCP state changes");
  const std::string back =
      "the marker's flow map is back after a reload (match_all off, or a marker added): the kernel "
      "plugin's program marks it from the first packet again (the fixed tag)";
  EXPECT_EQ(count("marking from the first packet"), 0) << proc->log();
  reload(config_with_marker("kernel", keys));
  {
    NetnsScope in_a(net->a);
    ASSERT_GE(fds.add(tcp_connect("198.18.0.2", 5000)), 0);  // the event that shows it the map
  }
  for (int i = 0; i < 300 && count(back) == 0; ++i) usleep(10000);
  EXPECT_EQ(count(back), 1) << proc->log();
  EXPECT_EQ(count("does not mark from the first packet"), 0) << proc->log();
  reload(config_with_marker("kernel", keys + "interval = 3s\n"));
  EXPECT_EQ(count("marking from the first packet"), 1) << "restarted, the plugin takes the map\n"
                                                       << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);

  // Both in the configuration from the start: marked from the first packet, nothing to follow.
  start_flowd(config_with_marker("kernel", keys), "following TCP state changes");
  EXPECT_EQ(count("marking from the first packet"), 1) << proc->log();
  EXPECT_EQ(count(back), 0) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Process ownership (issue 15): `iperf3 -s` in namespace `ns` on 5201, one client only (-1); its
// pid is killed by the fixture's TearDown if the test ends first; `prefix` runs it (setpriv).
// Returns once it listens.
void KernelNetns::start_iperf3_server(const std::string& ns, const std::string& prefix) {
  std::string out;
  ASSERT_EQ(run_shell("ip netns exec " + ns + " " + prefix + " iperf3 -s -1 -p 5201 > " +
                          dir.file("iperf-s.log") + " 2>&1 & echo $!",
                      "", out),
            0);
  iperf_pid = std::stoi(out);
  for (int i = 0; i < 200; ++i) {
    std::string ss_out;
    net->exec(ns, "ss -tlnH sport = :5201", ss_out);
    if (!ss_out.empty()) return;
    usleep(20000);
  }
  FAIL() << "iperf3 -s does not listen";
}

const std::string kOwnerKeys =
    "process = iperf3\nflow_ids = 2:9, 3:3, cms:Cache\nignore_private = no\n"
    "internal_networks = 127.0.0.0/8\n";

// The events by connection (local and remote port), each of which must be a start and then an end
// with the same pair, one of flow_ids'.
std::map<std::pair<int, int>, std::vector<Event>> KernelNetns::owned_flows(
    const std::vector<Event>& ev) const {
  std::map<std::pair<int, int>, std::vector<Event>> by;
  for (const auto& e : ev) by[{e.src_port, e.dst_port}].push_back(e);
  const std::set<std::pair<int, int>> allowed{{2, 9}, {3, 3}};
  for (const auto& [ports, list] : by) {
    EXPECT_EQ(list.size(), 2u) << "ports " << ports.first << "->" << ports.second;
    if (list.size() != 2) continue;
    EXPECT_EQ(list[0].state, "start");
    EXPECT_EQ(list[1].state, "end");
    EXPECT_TRUE(allowed.contains({list[0].exp, list[0].act})) << list[0].exp << "/" << list[0].act;
    EXPECT_EQ(list[0].exp, list[1].exp) << "the end keeps the start's pair";
    EXPECT_EQ(list[0].act, list[1].act);
  }
  return by;
}

// `process = iperf3` without a fixed tag: a real iperf3 client and server, both in flowd's
// namespace (a), the server started after flowd. Every connection (the control connection and the
// three data streams), seen from both ends (the client's connect(), the server's listen()), gets a
// start and an end with one pair of flow_ids; the test's own connection (another process) is not
// reported. The kernel told every owner: nothing read from /proc per connection, no miss.
TEST_F(KernelNetns, AnIperf3ConnectionGetsAPairFromFlowIds) {
  Fds fds;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_listen("198.18.0.2", 5000)), 0);
  }
  start_flowd(config("kernel", kOwnerKeys), "following TCP state changes");
  ASSERT_NO_FATAL_FAILURE(start_iperf3_server(net->a));
  int other_port = 0;
  {
    NetnsScope in_a(net->a);
    ASSERT_GE(fds.add(tcp_connect("198.18.0.2", 5000, &other_port)), 0);  // not iperf3's
  }
  std::string out;
  ASSERT_EQ(net->exec(net->a, "iperf3 -c 198.18.0.1 -p 5201 -t 1 -P 3 -i 0", out), 0) << out;
  // 4 connections, 2 ends each, a start and an end each.
  auto by = owned_flows(events(16, 3000ms));
  int client = 0, server = 0;
  for (const auto& [ports, list] : by) {
    EXPECT_NE(ports.first, other_port) << "another process's connection is not reported";
    client += ports.second == 5201;
    server += ports.first == 5201;
  }
  EXPECT_EQ(client, 4) << "the control connection and 3 streams, connect()ed by iperf3 -c\n"
                       << proc->log();
  EXPECT_EQ(server, 4) << "the same, accepted on iperf3 -s's listener";
  EXPECT_EQ(by.size(), 8u);
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_kernel_owner_unknown_total"), 0) << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// A listener older than flowd: its listen() came before the program was attached, so its owner is
// read from /proc once at start and told to the program. The connections iperf3 -s accepts
// afterwards (a client in namespace b) are tagged; those a listener of another process (the test's,
// also older than flowd) holds are not reported.
TEST_F(KernelNetns, AnIperf3ListenerOlderThanFlowdTagsWhatItAccepts) {
  Fds fds;
  ASSERT_NO_FATAL_FAILURE(start_iperf3_server(net->a));
  {
    NetnsScope in_a(net->a);
    ASSERT_GE(fds.add(tcp_listen("198.18.0.1", 5000)), 0);
  }
  start_flowd(config("kernel", kOwnerKeys), "following TCP state changes");
  int other_port = 0;
  {
    NetnsScope in_b(net->b);
    ASSERT_GE(fds.add(tcp_connect("198.18.0.1", 5000, &other_port)), 0);
  }
  std::string out;
  ASSERT_EQ(net->exec(net->b, "iperf3 -c 198.18.0.1 -p 5201 -t 1 -P 3 -i 0", out), 0) << out;
  auto by = owned_flows(events(8, 3000ms));
  for (const auto& [ports, list] : by) {
    EXPECT_EQ(ports.first, 5201) << "accepted by iperf3 -s only";
    EXPECT_NE(ports.second, other_port);
  }
  EXPECT_EQ(by.size(), 4u) << proc->log();
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_kernel_owner_unknown_total"), 0) << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Where BPF cannot load, ownership is polled as the iperf plugin does: /proc and the listening
// sockets at every scan. flowd has no capability at all (root without CAP_SYS_PTRACE may read
// /proc/PID/fd of a process whose capabilities are not above its own: iperf3 -s runs without any
// too).
TEST_F(KernelNetns, WithoutCapabilitiesIperf3ConnectionsAreOwnedByPolling) {
  std::string out;
  if (run_shell("command -v setpriv", "", out) != 0) GTEST_SKIP() << "setpriv not installed";
  const std::string no_caps = "setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all --";
  ASSERT_NO_FATAL_FAILURE(start_iperf3_server(net->a, no_caps));
  start_flowd(config("kernel", kOwnerKeys + "interval = 200ms\n"), "scanning TCP connections",
              {"setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"});
  ASSERT_NE(proc->log().find("polling sock_diag every 200 ms"), std::string::npos) << proc->log();
  ASSERT_EQ(net->exec(net->b, "iperf3 -c 198.18.0.1 -p 5201 -t 2 -P 3 -i 0", out), 0) << out;
  auto by = owned_flows(events(8, 3000ms));
  for (const auto& [ports, list] : by) EXPECT_EQ(ports.first, 5201);
  EXPECT_EQ(by.size(), 4u) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN (root with an empty capability set), the plugin says
// why in one line and polls with sock_diag like the netlink plugin.
TEST_F(KernelNetns, WithoutCapabilitiesItSaysWhyAndPolls) {
  std::string out;
  if (run_shell("command -v setpriv", "", out) != 0) GTEST_SKIP() << "setpriv not installed";
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  start_flowd(config("kernel", kTagKeys + "interval = 200ms\n"), "scanning TCP connections",
              {"setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"});
  std::string log = proc->log();
  EXPECT_NE(log.find("cannot follow TCP state changes in the kernel (loading the BPF program: "
                     "Operation not permitted (flowd lacks CAP_BPF and CAP_PERFMON, or "
                     "CAP_SYS_ADMIN)); polling sock_diag every 200 ms instead"),
            std::string::npos)
      << log;
  int port = 0, fd;
  {
    NetnsScope in_a(net->a);
    fd = fds.add(tcp_connect("198.18.0.2", 5000, &port));
  }
  ASSERT_GE(fd, 0);
  auto ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  EXPECT_EQ(ev[0].state, "start");
  EXPECT_EQ(ev[0].src_port, port);
  EXPECT_EQ(ev[0].exp, 2);
  std::string m = scrape();
  EXPECT_GE(counter(m, "flowd_scans_total{plugin=\"kernel\"}"), 1) << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try16b F5: `flowd status` listed `kernel` alone, whether it followed the kernel or polled (the
// log and the metrics only told them apart). It says which, and why it polls.
TEST_F(KernelNetns, StatusSaysWhetherTheKernelPluginFollowsTheKernelOrPolls) {
  std::string out, err;
  if (run_shell("command -v setpriv", "", out) != 0) GTEST_SKIP() << "setpriv not installed";
  std::string cfg = config("kernel", kTagKeys + "interval = 200ms\n");
  cfg.replace(cfg.find("plugins = kernel"), 16, "plugins = kernel, api");
  cfg += "[plugin.api]\nsocket = " + dir.file("api.sock") + "\n";
  auto status = [&](const std::string& mode) {
    ASSERT_EQ(run_flowd({"status", "-c", dir.file("flowd.cfg")}, out, err), 0) << err;
    EXPECT_NE(out.find("plugins:    kernel, api\n  kernel         " + mode), std::string::npos)
        << out;
    ASSERT_EQ(run_flowd({"status", "--json", "-c", dir.file("flowd.cfg")}, out, err), 0) << err;
    const auto j = nlohmann::json::parse(out);
    for (const auto& c : j["components"])
      if (c["name"] == "kernel")
        EXPECT_EQ(c["mode"].get<std::string>().rfind(mode, 0), 0u) << c;
      else
        EXPECT_FALSE(c.contains("mode")) << c;
  };
  start_flowd(cfg, "following TCP state changes");
  status("following TCP state changes in the kernel (BPF, 1048576-byte ring buffer)");
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
  start_flowd(cfg, "scanning TCP connections",
              {"setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"});
  status(
      "polling sock_diag every 200 ms: cannot follow TCP state changes in the kernel (loading "
      "the BPF program: Operation not permitted");
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15d D2: a reload that restarts a polling scanner (netlink, or the kernel plugin where
// BPF cannot load) hands what it followed to its successor, whose first scan is an ordinary scan:
// it starts a connection opened since the predecessor's last scan, keeps the one adopted at the
// first start quiet and starts the one reported before the reload no second time. Before, the
// successor's first scan adopted the new connection silently: it was never reported at all.
TEST_F(KernelNetns, AReloadOfAPollingScannerStartsWhatOpenedSinceItsLastScan) {
  std::string out;
  if (run_shell("command -v setpriv", "", out) != 0) GTEST_SKIP() << "setpriv not installed";
  const std::vector<std::string> no_caps{"setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                                         "--bounding-set=-all", "--"};
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  // A connection from a; closed with a reset, so that nothing of it is left for the next round.
  auto connect = [&](int& port) {
    NetnsScope in_a(net->a);
    return tcp_connect("198.18.0.2", 5000, &port);
  };
  auto reset = [](int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
  };
  for (const std::string plugin : {"netlink", "kernel"}) {
    SCOPED_TRACE(plugin);
    auto cfg = [&](const std::string& interval) {
      return config(plugin, kTagKeys + "interval = " + interval + "\n");
    };
    int adopted_port = 0, reported_port = 0, new_port = 0;
    const int adopted = connect(adopted_port);  // older than flowd
    ASSERT_GE(adopted, 0);
    start_flowd(cfg("200ms"), "scanning TCP connections",
                plugin == "kernel" ? no_caps : std::vector<std::string>{});
    if (plugin == "kernel") {
      ASSERT_NE(proc->log().find("polling sock_diag every 200 ms"), std::string::npos)
          << proc->log();
    }
    const int reported = connect(reported_port);
    ASSERT_GE(reported, 0);
    auto ev = events(1);
    ASSERT_EQ(ev.size(), 1u) << proc->log();
    EXPECT_EQ(ev[0].state, "start");
    EXPECT_EQ(ev[0].src_port, reported_port);
    auto after_reloads = [&](int n) {
      for (int i = 0; i < 300 && count("after a reload") < n; ++i) usleep(10000);
      return count("after a reload");
    };
    // The restarted plugin scans at its start, then not for 30 s: a connection opened now is one
    // its successor's first scan finds new.
    reload(cfg("30s"));
    ASSERT_EQ(after_reloads(1), 1) << proc->log();
    EXPECT_EQ(count("every 30000 ms after a reload; 2 connections followed on from before the "
                    "reload; 0 new started by the first scan"),
              1)
        << proc->log();
    const int fresh = connect(new_port);
    ASSERT_GE(fresh, 0);
    reload(cfg("200ms"));
    ASSERT_EQ(after_reloads(2), 2) << proc->log();
    EXPECT_EQ(count("every 200 ms after a reload; 2 connections followed on from before the "
                    "reload; 1 new started by the first scan"),
              1)
        << proc->log();
    ev = events(1);
    ASSERT_EQ(ev.size(), 1u) << "the connection opened since the last scan is started\n"
                             << proc->log();
    EXPECT_EQ(ev[0].state, "start");
    EXPECT_EQ(ev[0].src_port, new_port);
    EXPECT_EQ(ev[0].exp, 2);
    EXPECT_TRUE(events(1, 1000ms).empty())
        << "the adopted one stays quiet, the reported one is not started twice";
    reset(adopted);
    reset(reported);
    reset(fresh);
    ev = events(2);
    ASSERT_EQ(ev.size(), 2u) << proc->log();
    std::set<int> ended;
    for (const auto& e : ev) {
      EXPECT_EQ(e.state, "end");
      ended.insert(e.src_port);
    }
    EXPECT_EQ(ended, (std::set<int>{reported_port, new_port}));
    EXPECT_TRUE(events(1, 1000ms).empty()) << "the adopted one ends quietly";
    EXPECT_EQ(count("adopted"), 1) << "said at the start only\n" << proc->log();
    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(5s), 0);
  }
}

// Issue 15, found by a site admin. The helpers of these tests: the daemon with np_api beside the
// kernel plugin and the marker, a line written into its pipe, a metric waited for.
class KernelIssue15 : public KernelNetns {
 protected:
  // The np_api line's middle for the connection rule_connection_beside_np_api() made: " tcp
  // [server] 5001 [client] port ".
  // The events' states and experiments, as "start 2; end 2; ", for comparing a sequence.
  static std::string said_of(const std::vector<Event>& events) {
    std::string said;
    for (const auto& e : events) said += e.state + " " + std::to_string(e.exp) + "; ";
    return said;
  }
  std::string np_tuple(int client_port) const {
    return " tcp " + net->addr_a + " 5001 " + net->addr_b + " " + std::to_string(client_port) + " ";
  }
  std::string with_np_api(const std::string& kernel_keys) const {
    return beside_np_api(config_with_marker("kernel", kernel_keys), "kernel");
  }
  // flowd with np_api and a rule for port 5001 (tag 2/9) on a listener in a, and one connection
  // to it from b, accepted: its client port and the server's socket.
  static constexpr const char* kRuleKeys =
      "rules = 5001 2 9\nignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  void rule_connection_beside_np_api(Fds& fds, int& client_port, int& conn) {
    int listener;
    {
      NetnsScope in_a(net->a);
      listener = fds.add(tcp_listen("::", 5001));
    }
    ASSERT_GE(listener, 0);
    start_flowd(with_np_api(kRuleKeys), "following TCP state changes");
    int client;
    {
      NetnsScope in_b(net->b);
      client = fds.add(tcp_connect(net->addr_a, 5001, &client_port));
    }
    ASSERT_GE(client, 0);
    conn = fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_GE(conn, 0);
  }
  // A rule for the server port 5201 in namespace a (kernel-decided: marked from the first packet).
  static constexpr const char* kRule5201Keys =
      "rules = 5201 2 9\nignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  // One connection from namespace b to [addr_a]:5201, accepted on `listener`.
  struct Pair {
    int client = -1, conn = -1, port = 0;  // the client's socket, the server's, the client's port
  };
  Pair accept_one(Fds& fds, int listener) {
    Pair p;
    {
      NetnsScope in_b(net->b);
      p.client = fds.add(tcp_connect(net->addr_a, 5201, &p.port));
    }
    EXPECT_GE(p.client, 0);
    p.conn = fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_GE(p.conn, 0);
    return p;
  }
  // Accepts `n` connections on `listener` into `into`, and waits for their `n` start events.
  void accept_reported(std::vector<Pair>& into, Fds& fds, int listener, int n) {
    for (int i = 0; i < n; ++i) into.push_back(accept_one(fds, listener));
    ASSERT_EQ(events(static_cast<std::size_t>(n)).size(), static_cast<std::size_t>(n))
        << proc->log();
  }
  // Closes both ends (`fds`, which holds them, forgets them).
  static void close_pair(Fds& fds, Pair& p) {
    for (auto& fd : fds.fds)
      if (fd == p.client || fd == p.conn) {
        ::close(fd);
        fd = -1;
      }
    p.client = p.conn = -1;
  }
  // Each server socket of `pairs` sends a segment: every one, captured in namespace b, carries
  // `tag` (the label's semantic bits). A loaded machine's tcpdump misses segments now and then: the
  // connections whose segment it did not capture send again, up to three times.
  void expect_next_data_labelled(const std::vector<Pair>& pairs, std::uint32_t tag) {
    const std::string pcap = dir.file("data.pcap");
    std::map<int, std::uint32_t> labels;  // by client port: the first data segment's
    for (int attempt = 0; attempt < 3 && labels.size() < pairs.size(); ++attempt) {
      auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
      for (const auto& p : pairs) {
        if (!labels.contains(p.port)) {
          EXPECT_EQ(::send(p.conn, "x", 1, 0), 1);
        }
      }
      std::this_thread::sleep_for(300ms);  // tcpdump writes the last segments late
      dump->stop();
      for (const auto& g : segments_from(pcap, 5201))
        if (g.len > 0) labels.emplace(g.dport, g.label);
    }
    for (const auto& p : pairs) {
      auto it = labels.find(p.port);
      ASSERT_NE(it, labels.end()) << "no data segment captured for client port " << p.port;
      EXPECT_EQ(it->second & kLabelSemanticMask, tag)
          << "client port " << p.port << ": label 0x" << std::hex << it->second;
    }
  }
  // Sends a segment from each server socket of `pairs` until one captured in namespace b carries
  // `tag` (up to 10 rounds): the marker writes a start's label beside the firefly backend's send,
  // not before it, so a test that saw the firefly may send before the entry is there.
  void wait_until_relabelled(const std::vector<Pair>& pairs, std::uint32_t tag) {
    const std::string pcap = dir.file("relabel.pcap");
    std::set<int> done;  // client ports
    for (int round = 0; round < 10 && done.size() < pairs.size(); ++round) {
      auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
      for (const auto& p : pairs)
        if (!done.contains(p.port)) {
          EXPECT_EQ(::send(p.conn, "x", 1, 0), 1);
        }
      std::this_thread::sleep_for(200ms);
      dump->stop();
      for (const auto& g : segments_from(pcap, 5201))
        if (g.len > 0 && (g.label & kLabelSemanticMask) == tag) done.insert(g.dport);
    }
  }
  // A connection from namespace a to [addr_b]:port (a listener in b that never accepts); the
  // client's port.
  int connect_to_b(Fds& fds, int port, int& client) {
    {
      NetnsScope in_b(net->b);
      fds.add(tcp_listen("::", port));
    }
    int local = 0;
    NetnsScope in_a(net->a);
    client = fds.add(tcp_connect(net->addr_b, port, &local));
    return local;
  }
};

// Defect 1: the kernel plugin excludes the private fd00::/8 (ignore_private), np_api reports a
// connection there and the marker marks it; the resync of a reload (any change of
// [plugin.kernel]) left it alone only if the kernel's program had written it. Before, the resync
// deleted every excluded connection's entry, np_api's included.
TEST_F(KernelIssue15, AResyncNeverRemovesAMarkAnotherPluginPutThere) {
  const std::string keys = "experiment = 2\nactivity = 9\ninternal_networks = 127.0.0.0/8\n";
  start_flowd(with_np_api(keys), "following TCP state changes");
  Fds fds;
  int client = -1;
  const int port = connect_to_b(fds, 6000, client);
  ASSERT_GE(client, 0);
  pipe_line("start tcp " + net->addr_a + " " + std::to_string(port) + " " + net->addr_b +
            " 6000 3 3");
  ASSERT_EQ(wait_metric("flowd_marker_flows", 1), 1) << proc->log();
  reload(with_np_api(keys + "interval = 3s\n"));
  std::this_thread::sleep_for(500ms);  // the successor's resync
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_marker_flows"), 1) << "np_api's mark stays\n" << proc->log();
  EXPECT_EQ(counter(m, "flowd_kernel_first_packet_unmarks_total"), 0) << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Defect 2: np_api and the kernel plugin report one connection (a rule for the server's port 5001,
// np_api's line with another tag). The explicit report takes the flow over while it is live: the
// kernel's flow ends where np_api's starts, and when np_api's ends the kernel's starts again, so
// the rest of the connection stays marked and listed, and every end follows its own start.
TEST_F(KernelIssue15, AnExplicitReportTakesTheConnectionOverWhileItIsLive) {
  Fds fds;
  int client_port = 0, conn = -1;
  ASSERT_NO_FATAL_FAILURE(rule_connection_beside_np_api(fds, client_port, conn));
  auto first = events(1);
  ASSERT_EQ(first.size(), 1u) << proc->log();
  EXPECT_EQ(first[0].state, "start");
  const std::string tuple = np_tuple(client_port);
  pipe_line("start" + tuple + "3 3");
  std::this_thread::sleep_for(1100ms);  // fireflies carry times to the second
  pipe_line("end" + tuple + "3 3");
  auto middle = events(4);
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << "the rule's flow goes on: still marked\n"
                                                     << proc->log();
  ::close(conn);
  fds.fds.back() = -1;
  auto last = events(1);
  std::vector<Event> all = first;
  all.insert(all.end(), middle.begin(), middle.end());
  all.insert(all.end(), last.begin(), last.end());
  std::ostringstream seen;
  for (const auto& e : all)
    seen << e.state << " " << e.exp << ":" << e.act << " " << e.start_time << " " << e.end_time
         << "\n";
  ASSERT_EQ(all.size(), 6u) << seen.str() << proc->log();
  const std::vector<std::pair<std::string, int>> want = {{"start", 2}, {"end", 2},   {"start", 3},
                                                         {"end", 3},   {"start", 2}, {"end", 2}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(all[i].state, want[i].first) << i << "\n" << seen.str();
    EXPECT_EQ(all[i].exp, want[i].second) << i << "\n" << seen.str();
    if (all[i].state == "end") {
      EXPECT_NE(all[i].start_time, all[i].end_time) << i << "\n" << seen.str();
    }
  }
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// issue 15 E6: a transfer tool killed after its np_api start left the marker's entry for ever, so
// a later connection reusing the ports carried the dead transfer's tag. np_api's check (1 s here)
// finds the connection closed and ends the flow: the entry goes, an end event comes.
TEST_F(KernelIssue15, AToolThatDiesWithoutItsEndLeavesNoMarkBehind) {
  Fds fds;
  int listener;
  {
    NetnsScope in_a(net->a);
    listener = fds.add(tcp_listen("::", 5002));  // no rule: np_api's flow alone
  }
  ASSERT_GE(listener, 0);
  start_flowd(with_np_api(kRuleKeys) + "check_interval = 1s\n", "following TCP state changes");
  int client_port = 0, client;
  {
    NetnsScope in_b(net->b);
    client = fds.add(tcp_connect(net->addr_a, 5002, &client_port));
  }
  ASSERT_GE(client, 0);
  const int conn = fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(conn, 0);
  pipe_line("start tcp " + net->addr_a + " 5002 " + net->addr_b + " " +
            std::to_string(client_port) + " 3 3");
  auto started = events(1);
  ASSERT_EQ(started.size(), 1u) << proc->log();
  EXPECT_EQ(started[0].state, "start");
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << proc->log();
  // Two checks find it open: still marked.
  std::this_thread::sleep_for(2200ms);
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << "an open connection stays marked\n"
                                                     << proc->log();
  for (auto& fd : fds.fds)
    if (fd == conn || fd == client) {
      ::close(fd);
      fd = -1;
    }
  auto ended = events(1, 3s);
  ASSERT_EQ(ended.size(), 1u) << "no end within 3 s of the close\n" << proc->log();
  EXPECT_EQ(ended[0].state, "end");
  EXPECT_EQ(ended[0].exp, 3);
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0) << proc->log();
  EXPECT_EQ(
      wait_metric(
          "flowd_explicit_flows_expired_total{plugin=\"np_api\",reason=\"connection_closed\"}", 1),
      1);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// A user's try (issue 15): a repeated np_api end, or one whose start np_api never saw, ended the
// kernel's live flow (unmarked, gone from `flowd flows`, its later end stamped start = end); and
// np_api removed by a reload while covering a connection left the kernel's end waiting for ever.
TEST_F(KernelIssue15, AnUnmatchedEndOrARemovedNpApiNeverStrandsTheKernelsFlow) {
  Fds fds;
  int client_port = 0, conn = -1;
  ASSERT_NO_FATAL_FAILURE(rule_connection_beside_np_api(fds, client_port, conn));
  auto seen = events(1);
  const std::string tuple = np_tuple(client_port);
  pipe_line("start" + tuple + "3 3");
  pipe_line("end" + tuple + "3 3");
  pipe_line("end" + tuple + "3 3");  // repeated
  auto more = events(5, 1500ms);     // end 2, start 3, end 3, start 2: and nothing for the repeat
  seen.insert(seen.end(), more.begin(), more.end());
  std::string said = said_of(seen);
  EXPECT_EQ(said, "start 2; end 2; start 3; end 3; start 2; ") << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << "the rule's flow stays marked";

  pipe_line("start" + tuple + "3 3");
  auto taken = events(2);
  ASSERT_EQ(taken.size(), 2u) << proc->log();
  reload(config_with_marker("kernel", kRuleKeys));  // np_api removed
  auto back = events(2);
  ASSERT_EQ(back.size(), 2u) << proc->log();
  EXPECT_EQ(back[0].state + " " + std::to_string(back[0].exp), "end 3");
  EXPECT_EQ(back[1].state + " " + std::to_string(back[1].exp), "start 2");
  EXPECT_NE(proc->log().find("plugin np_api removed: the 1 flow it reported ends with it"),
            std::string::npos)
      << proc->log();
  ::close(conn);
  fds.fds.back() = -1;
  auto last = events(1);
  ASSERT_EQ(last.size(), 1u) << "the kernel's end reaches the backends\n" << proc->log();
  EXPECT_EQ(last[0].state + " " + std::to_string(last[0].exp), "end 2");
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15g 6: a line that names the peer first is the same connection. Before, it was a second flow
// beside the kernel plugin's (two starts with two tags) whose marker entry never matched a packet.
TEST_F(KernelIssue15, AnNpApiLineThatNamesThePeerFirstTakesTheConnectionOver) {
  Fds fds;
  int client_port = 0, conn = -1;
  ASSERT_NO_FATAL_FAILURE(rule_connection_beside_np_api(fds, client_port, conn));
  auto seen = events(1);
  const std::string reversed =
      " tcp " + net->addr_b + " " + std::to_string(client_port) + " " + net->addr_a + " 5001 ";
  pipe_line("start" + reversed + "3 3");
  auto more = events(3, 1500ms);
  seen.insert(seen.end(), more.begin(), more.end());
  std::string said = said_of(seen);
  EXPECT_EQ(said, "start 2; end 2; start 3; ") << proc->log();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().src, net->addr_a) << "this host's end first";
  EXPECT_EQ(seen.back().src_port, 5001);
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << "one entry, the tool's tag";
  pipe_line("end" + reversed + "3 3");
  auto back = events(2);
  said = said_of(back);
  EXPECT_EQ(said, "end 3; start 2; ") << "handed back to the kernel's report";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15d D6: np_api beside a connection plugin that learns of a close after the tool's `end`. The
// tool closes its connection and reports its end; the connection plugin's `end` comes later. The
// arbiter handed the connection back to the plugin's report at the tool's end, so a flow started
// for a closed connection and was ended by the plugin's late end (with the kernel plugin restarted
// by a reload: at once, start = end): a firefly pair and a mark for nothing. A connection is handed
// back only while the kernel says it is open. Deterministic with the polling netlink scanner (its
// end comes at its next scan); the kernel plugin's case (its end late because a reload restarts
// it) follows.
TEST_F(KernelIssue15, AClosedConnectionIsNotHandedBackAfterTheToolsEnd) {
  Fds fds;
  const int listener = listen_in_a(fds, 5001);
  ASSERT_GE(listener, 0);
  start_flowd(
      beside_np_api(config("netlink", std::string(kRuleKeys) + "interval = 1s\n"), "netlink"));
  int client_port = 0, client;
  {
    NetnsScope in_b(net->b);
    client = fds.add(tcp_connect(net->addr_a, 5001, &client_port));
  }
  ASSERT_GE(client, 0);
  int conn = fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_GE(conn, 0);
  auto seen = events(1);  // the scanner's start, at its next scan
  const std::string tuple = np_tuple(client_port);
  pipe_line("start" + tuple + "3 3");
  auto more = events(2);
  seen.insert(seen.end(), more.begin(), more.end());
  // The tool is done: it closes its socket (FIN-WAIT-2, its peer stays in CLOSE-WAIT), then says
  // so.
  ::close(conn);
  fds.fds.back() = -1;
  std::this_thread::sleep_for(20ms);
  pipe_line("end" + tuple + "3 3");
  more = events(3, 2500ms);  // the scanner's next scans see the close
  seen.insert(seen.end(), more.begin(), more.end());
  std::string said = said_of(seen);
  EXPECT_EQ(said, "start 2; end 2; start 3; end 3; ")
      << "nothing handed back to a closed connection\n"
      << proc->log();
  const std::string m = scrape();
  EXPECT_EQ(metric_value(m, "flowd_local_flow_arbiter_events_total{outcome=\"dropped\"}"), 1)
      << "the scanner's late end\n"
      << m;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// The same with the kernel plugin, whose end is late because a reload restarts it: the connection
// closes and the tool's end comes while the successor loads its program (the stopped one's ring
// holds the close until the successor reads it).
TEST_F(KernelIssue15, AConnectionClosedWhileTheKernelPluginRestartsIsNotHandedBack) {
  Fds fds;
  int client_port = 0, conn = -1;
  ASSERT_NO_FATAL_FAILURE(rule_connection_beside_np_api(fds, client_port, conn));
  auto seen = events(1);
  const std::string tuple = np_tuple(client_port);
  pipe_line("start" + tuple + "3 3");
  auto more = events(2);
  seen.insert(seen.end(), more.begin(), more.end());
  ASSERT_EQ(wait_metric("flowd_marker_flows", 1), 1) << proc->log();
  const int reloads = count("reloaded: ");
  const int stops = count("stopped plugin kernel");
  dir.write("flowd.cfg", with_np_api(std::string(kRuleKeys) + "interval = 3s\n"));
  proc->signal(SIGHUP);
  for (int i = 0; i < 5000 && count("stopped plugin kernel") == stops; ++i) usleep(1000);
  ASSERT_EQ(count("stopped plugin kernel"), stops + 1) << proc->log();
  ::close(conn);
  fds.fds.back() = -1;
  // Its FIN acknowledged (FIN-WAIT-2, orphaned: closed for the hand-back's check). A fixed 5 ms
  // was too short under ASan on a loaded machine: still FIN-WAIT-1, the connection counted open
  // and was handed back ("start 2; end 2" more).
  for (int i = 0; i < 200; ++i) {
    std::string out;
    net->exec(net->a, "ss -tnH state fin-wait-2 '( sport = :5001 )'", out);
    if (std::count(out.begin(), out.end(), '\n') >= 1) break;
    std::this_thread::sleep_for(10ms);
  }
  pipe_line("end" + tuple + "3 3");
  for (int i = 0; i < 1000 && count("reloaded: ") == reloads; ++i) usleep(10000);
  more = events(3, 2500ms);
  seen.insert(seen.end(), more.begin(), more.end());
  std::string said = said_of(seen);
  EXPECT_EQ(said, "start 2; end 2; start 3; end 3; ")
      << "nothing handed back to a closed connection\n"
      << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Defect 7: a reload that adds the network of a live connection to internal_networks ends it then
// (before, it stayed reported until it closed, its mark gone).
TEST_F(KernelIssue15, AReloadThatExcludesALiveConnectionEndsIt) {
  Fds fds;
  int listener;
  {
    NetnsScope in_b(net->b);
    listener = fds.add(tcp_listen("198.19.0.2", 5000));
  }
  ASSERT_GE(listener, 0);
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  int port = 0, client;
  {
    NetnsScope in_a(net->a);
    client = fds.add(tcp_connect("198.19.0.2", 5000, &port));
  }
  ASSERT_GE(client, 0);
  auto ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  EXPECT_EQ(ev[0].state, "start");
  reload(config("kernel", kTagKeys + "internal_networks = 127.0.0.0/8, 198.19.0.0/24\n"));
  ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << "the excluded connection's end comes with the reload\n"
                           << proc->log();
  EXPECT_EQ(ev[0].state, "end");
  EXPECT_EQ(ev[0].src_port, port);
  // try17b F1: the exclusion lifted again, the open connection starts again (before, never).
  reload(config("kernel", kTagKeys));
  ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  EXPECT_EQ(ev[0].state, "start");
  EXPECT_EQ(ev[0].src_port, port);
  EXPECT_EQ(wait_count("1 open and tagged now: started"), 1) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try16b F3, the fixed tag: a reload that changes it retags the live connections of the netlink
// scanner and of the kernel plugin alike (an end with the old tag, a start with the new one).
TEST_F(KernelIssue15, AReloadThatChangesTheFixedTagRetagsTheLiveConnections) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  const std::string rest =
      "ignore_private = no\ninternal_networks = 127.0.0.0/8\ninterval = 200ms\n";
  // The kernel plugin with process too: a connection its process does not own has the fixed tag,
  // which a reload changes (try17a F2: before, nothing was retagged with process set).
  const std::pair<std::string, std::string> cases[] = {
      {"netlink", ""}, {"kernel", ""}, {"kernel", "process = iperf3\n"}};
  for (const auto& [plugin, owner] : cases) {
    start_flowd(config(plugin, "experiment = 2\nactivity = 9\n" + owner + rest),
                plugin == "kernel" ? "following TCP state changes" : "scanning TCP connections");
    int port = 0, client;
    {
      NetnsScope in_a(net->a);
      client = fds.add(tcp_connect("198.18.0.2", 5000, &port));
    }
    ASSERT_GE(client, 0);
    ASSERT_EQ(events(1).size(), 1u) << proc->log();
    reload(config(plugin, "experiment = 3\nactivity = 4\n" + owner + rest));
    std::string said;
    for (const auto& e : events(2))
      said += fmt::format("{} {} {}/{}; ", e.state, e.src_port == port, e.exp, e.act);
    EXPECT_EQ(said, "end true 2/9; start true 3/4; ") << plugin << " " << owner << "\n"
                                                      << proc->log();
    EXPECT_EQ(wait_count("1 tagged otherwise now: ended and started again with its new tag"), 1)
        << proc->log();
    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(5s), 0);
    EXPECT_EQ(events(1).size(), 1u) << "the stop's end";
    ::close(client);
    fds.fds.back() = -1;
    kill_and_forget();
  }
}

// Defects 8 and 9: a plugin that stops without a successor (a reload removed it; flowd stops) ends
// the flows it started, as the netflow plugin does; a reload that restarts it does not.
TEST_F(KernelIssue15, APluginStoppedWithoutSuccessorEndsItsFlows) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  auto open_one = [&](int& port) {
    NetnsScope in_a(net->a);
    return fds.add(tcp_connect("198.18.0.2", 5000, &port));
  };
  const std::string cfg = config("kernel", kTagKeys);
  start_flowd(cfg, "following TCP state changes");
  int port = 0;
  ASSERT_GE(open_one(port), 0);
  auto ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  // Restarted (its section changed): followed on, no end.
  reload(config("kernel", kTagKeys + "interval = 3s\n"));
  EXPECT_TRUE(events(1, 1500ms).empty()) << proc->log();
  // Removed: its end now.
  const std::string np = config("np_api", "path = " + dir.file("np") + "\n");
  reload(np);
  ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  EXPECT_EQ(ev[0].state, "end");
  EXPECT_EQ(ev[0].src_port, port);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);

  // SIGTERM: the end of each flow it started, before flowd exits.
  start_flowd(cfg, "following TCP state changes");
  int second = 0;
  ASSERT_GE(open_one(second), 0);
  ev = events(1);
  ASSERT_EQ(ev.size(), 1u) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
  ev = events(2);
  std::map<int, std::string> last;
  for (const auto& e : ev) last[e.src_port] = e.state;
  EXPECT_EQ(last[second], "end") << proc->log();
  EXPECT_EQ(last.count(port), 0u) << "adopted silently at start, not reported";
}

// Defect 14: a reload that gives the marker a new map (max_flows) while the kernel plugin keeps
// running: the plugin loads its program on the new map at its next connection event, so the
// connections after it are marked from their first packet again (before, its program kept writing
// the old map, which no marker read: the first data segment left unlabelled).
TEST_F(KernelIssue15, AMarkerMapChangedByAReloadIsFollowed) {
  const std::string keys =
      "rules = 5201 2 9\nignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  start_flowd(config_with_marker("kernel", keys), "following TCP state changes");
  reload(config_with_marker("kernel", keys) + "max_flows = 4096\n");
  serve_one(listener, net->addr_a, 5201, 0ms);  // the event that shows the plugin the new map
  ASSERT_EQ(events(2).size(), 2u) << proc->log();
  // Report try15c item 10: its mark went into the old map, which no marker reads: not counted.
  EXPECT_EQ(counter(scrape(), "flowd_kernel_first_packet_marks_total"), 0) << proc->log();
  const std::string followed =
      "the kernel plugin's program now marks the new map from the first packet";
  for (int i = 0; i < 300 && count(followed) == 0; ++i) usleep(10000);  // the program loads
  ASSERT_EQ(count(followed), 1) << proc->log();
  const std::string pcap = dir.file("kernel.pcap");
  auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
  int port = serve_one(listener, net->addr_a, 5201, 0ms);
  std::this_thread::sleep_for(300ms);  // a loaded machine's tcpdump writes the last segments late
  dump->stop();
  std::vector<Segment> data;
  for (const auto& g : segments_from(pcap, 5201))
    if (g.dport == port && g.len > 0) data.push_back(g);
  ASSERT_EQ(data.size(), 2u) << proc->log();
  EXPECT_EQ(data[0].label & kLabelSemanticMask, make_label(2, 9, 0))
      << "the first data segment carries the label: 0x" << std::hex << data[0].label;
  EXPECT_EQ(counter(scrape(), "flowd_kernel_first_packet_marks_total"), 1) << "into the new map";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try16b F2: a reload that restarts the kernel plugin (a changed interval) keeps the old
// program marking until its successor reads its ring, ~100 ms in which its marks went into the
// marker's map uncounted: flowd_kernel_first_packet_marks_total fell ~70-100 short per restart at
// 1,000 connections/s while every first packet was labelled. The successor counts them now.
TEST_F(KernelIssue15, FirstPacketMarksAreCountedAcrossReloadsThatRestartThePlugin) {
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  start_flowd(config_with_marker("kernel", kRule5201Keys), "following TCP state changes");
  std::atomic<bool> enough{false};
  std::atomic<int> connections{0};
  std::jthread churn([&] {
    NetnsScope in_b(net->b);  // this thread's connect()s; accept() takes the listener's
    while (!enough) {
      int client = tcp_connect(net->addr_a, 5201);
      int conn = client >= 0 ? ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) : -1;
      if (conn >= 0) ++connections;
      if (conn >= 0) ::close(conn);
      if (client >= 0) ::close(client);
      std::this_thread::sleep_for(1ms);
    }
  });
  const int restarts = count("stopped plugin kernel");
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(200ms);
    reload(config_with_marker(
        "kernel", std::string(kRule5201Keys) + "interval = " + std::to_string(3 + i % 2) + "s\n"));
  }
  std::this_thread::sleep_for(200ms);
  enough = true;
  churn.join();
  ASSERT_EQ(count("stopped plugin kernel"), restarts + 6) << "each reload restarts the plugin";
  const int n = connections.load();
  ASSERT_GE(n, 300) << "connections during the reloads";
  const std::string starts =
      "flowd_flow_events_total{origin=\"local\",plugin=\"kernel\",state=\"start\"}";
  std::string m;
  for (int i = 0; i < 100 && counter(m, starts) < n; ++i) {
    if (i) std::this_thread::sleep_for(100ms);
    m = scrape();
  }
  ASSERT_EQ(counter(m, starts), n) << proc->log();
  EXPECT_EQ(counter(m, "flowd_kernel_first_packet_marks_total"), n)
      << "every one marked at its start, across 6 restarts";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try16b F3: a reload that changed a port rule, or dropped it, left the live connections it
// had tagged with their old tag and label until they closed (hour-long transfers mislabelled after
// an admin fixed a wrong rule). The successor ends each one it tags otherwise and starts it again
// with its new tag, whose label the next packet carries; one no longer tagged ends, unmarked.
TEST_F(KernelIssue15, AReloadThatChangesAPortRuleRetagsTheLiveConnections) {
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  const std::string rest = "ignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  start_flowd(config_with_marker("kernel", "rules = 5201 2 9\n" + rest),
              "following TCP state changes");
  std::vector<Pair> pairs;
  ASSERT_NO_FATAL_FAILURE(accept_reported(pairs, fds, listener, 2));
  expect_next_data_labelled(pairs, make_label(2, 9, 0));

  reload(config_with_marker("kernel", "rules = 5201 3 4\n" + rest));
  std::map<int, std::string> said;  // by client port
  for (const auto& e : events(4))
    said[e.dst_port] += fmt::format("{} {}/{}; ", e.state, e.exp, e.act);
  for (const auto& p : pairs) EXPECT_EQ(said[p.port], "end 2/9; start 3/4; ") << proc->log();
  EXPECT_EQ(wait_count("2 tagged otherwise now: ended and started again with their new tag"), 1)
      << proc->log();
  wait_until_relabelled(pairs, make_label(3, 4, 0));
  expect_next_data_labelled(pairs, make_label(3, 4, 0));
  EXPECT_EQ(wait_metric("flowd_marker_flows", 2), 2);

  reload(config_with_marker("kernel", "rules = 6001 3 4\n" + rest));
  said.clear();
  for (const auto& e : events(2))
    said[e.dst_port] += fmt::format("{} {}/{}; ", e.state, e.exp, e.act);
  for (const auto& p : pairs) EXPECT_EQ(said[p.port], "end 3/4; ") << proc->log();
  EXPECT_EQ(wait_count("2 no longer tagged: ended"), 1) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0) << "unmarked";

  // try17a F1: the rule back, the open connections are started again (before, never: a rule a
  // reload added did not cover a connection already open).
  reload(config_with_marker("kernel", "rules = 5201 3 4\n" + rest));
  said.clear();
  for (const auto& e : events(2))
    said[e.dst_port] += fmt::format("{} {}/{}; ", e.state, e.exp, e.act);
  for (const auto& p : pairs) EXPECT_EQ(said[p.port], "start 3/4; ") << proc->log();
  EXPECT_EQ(wait_count("2 open and tagged now: started"), 1) << proc->log();
  wait_until_relabelled(pairs, make_label(3, 4, 0));
  expect_next_data_labelled(pairs, make_label(3, 4, 0));
  for (auto& p : pairs) close_pair(fds, p);
  said.clear();
  for (const auto& e : events(2))
    said[e.dst_port] += fmt::format("{} {}/{}; ", e.state, e.exp, e.act);
  for (const auto& p : pairs) EXPECT_EQ(said[p.port], "end 3/4; ") << proc->log();
  EXPECT_TRUE(events(1, 1500ms).empty()) << "one end each";
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try17b F2: connections opened while reloads turned a port's rule on and off, the last without it:
// the old program marked some in the instant before its successor took over, whose rules leave
// them unreported, and they kept the old label for their life (2 of 120 in try17b). The successor
// takes out the marks the old rules made that its own do not.
TEST_F(KernelIssue15, ConnectionsOpenedWhileAReloadDropsTheirRuleKeepNoOldLabel) {
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  const std::string rest = "ignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  const std::string with = config_with_marker("kernel", "rules = 5201 2 9, 5999 3 3\n" + rest),
                    without = config_with_marker("kernel", "rules = 5999 3 3\n" + rest);
  start_flowd(with, "following TCP state changes");
  std::atomic<bool> enough{false};
  std::jthread churn([&] {
    NetnsScope in_b(net->b);
    for (int i = 0; i < 3000 && !enough; ++i) {
      fds.add(tcp_connect(net->addr_a, 5201));  // kept open, as a transfer
      fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
      std::this_thread::sleep_for(1ms);
    }
  });
  // Only the last change from with to without can leave a mark (a later one with the rule starts
  // the connection, the next without ends it): several rounds, each ending without, under churn.
  for (int i = 0; i < 9; ++i) {
    reload(i % 2 == 0 ? without : with);
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(200ms);
  enough = true;
  churn.join();
  std::this_thread::sleep_for(1s);  // the last records read, the last ends applied
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0)
      << "no rule for 5201 now: no label left of the old one\n"
      << proc->log();

  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15c item 6: match_all turned on, then off again by reloads. Meanwhile the marker keeps
// its map following the flows (its program reads none): a connection that closes under match_all
// leaves no entry behind, one that opens under it is in the map when match_all goes, and the
// kept-running kernel plugin, which has no map to mark under match_all, marks from the first packet
// again afterwards; the log says both. Before, the marker ignored every event under match_all (the
// closed connection's entry came back as a live mark, the new one was unmarked for the rest of its
// life) and the plugin never resumed, silently.
TEST_F(KernelIssue15, MatchAllOnThenOffMarksExactlyTheLiveFlowsAndResumesTheFirstPacket) {
  const std::string keys =
      "rules = 5201 2 9\nignore_private = no\ninternal_networks = 127.0.0.0/8\n";
  const std::string match_all = "match_all = yes\nexperiment = 3\nactivity = 3\n";
  const std::uint32_t tag = make_label(2, 9, 0);
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  start_flowd(config_with_marker("kernel", keys), "following TCP state changes");
  auto open_one = [&](int& client, int& conn) {
    int port = 0;
    {
      NetnsScope in_b(net->b);
      client = fds.add(tcp_connect(net->addr_a, 5201, &port));
    }
    conn = fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    return port;
  };
  auto close_one = [&](int client, int conn) {
    for (auto& fd : fds.fds)
      if (fd == client || fd == conn) {
        ::close(fd);
        fd = -1;
      }
  };
  int client1 = -1, conn1 = -1;
  open_one(client1, conn1);
  ASSERT_GE(conn1, 0);
  ASSERT_EQ(events(1).size(), 1u) << proc->log();
  ASSERT_EQ(wait_metric("flowd_marker_flows", 1), 1) << proc->log();
  reload(config_with_marker("kernel", keys) + match_all);
  serve_one(listener, net->addr_a, 5201, 0ms);  // the event that shows the plugin match_all's map
  ASSERT_EQ(events(2).size(), 2u) << proc->log();
  const std::string none =
      "the marker has no flow map to mark after a reload (match_all): the kernel plugin's program "
      "marks nothing";
  for (int i = 0; i < 300 && count(none) == 0; ++i) usleep(10000);  // logged after the events
  ASSERT_EQ(count(none), 1) << proc->log();
  close_one(client1, conn1);  // its end comes under match_all, its program marking nothing
  int client2 = -1, conn2 = -1;
  const int port2 = open_one(client2, conn2);  // opens under match_all
  ASSERT_GE(conn2, 0);
  ASSERT_EQ(events(2).size(), 2u) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << "the map follows the flows\n"
                                                     << proc->log();
  reload(config_with_marker("kernel", keys));
  // At each reload the map is kept: c1's entry at the first, c2's (and not c1's) at the second.
  EXPECT_EQ(count("kept the flow map of the previous marker: 1 flow stays marked"), 2)
      << proc->log();
  // The connection opened under match_all is marked with its rule's tag now. A loaded machine's
  // tcpdump has missed segments about one run in five: a capture without the segment is taken
  // again, up to three times.
  const std::string pcap = dir.file("kernel.pcap");
  std::vector<Segment> data;
  for (int attempt = 0; attempt < 3 && data.empty(); ++attempt) {
    auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
    ASSERT_EQ(::send(conn2, "after", 5, 0), 5);
    char buf[16];
    ASSERT_EQ(::recv(client2, buf, sizeof buf, 0), 5);
    std::this_thread::sleep_for(300ms);  // tcpdump writes the last segments late
    dump->stop();
    for (const auto& g : segments_from(pcap, 5201))
      if (g.dport == port2 && g.len > 0) data.push_back(g);
  }
  ASSERT_EQ(data.size(), 1u) << proc->log();
  EXPECT_EQ(data[0].label & kLabelSemanticMask, tag) << "0x" << std::hex << data[0].label;
  close_one(client2, conn2);  // the event that shows the plugin the marker's map again
  ASSERT_EQ(events(1).size(), 1u) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0)
      << "nothing left of the connection that closed under match_all\n"
      << proc->log();
  const std::string back =
      "the marker's flow map is back after a reload (match_all off, or a marker added): the "
      "kernel plugin's program marks it from the first packet again (1 port rule)";
  for (int i = 0; i < 300 && count(back) == 0; ++i) usleep(10000);
  ASSERT_EQ(count(back), 1) << proc->log();
  data.clear();
  for (int attempt = 0; attempt < 3 && data.size() != 2; ++attempt) {
    auto dump = std::make_unique<Tcpdump>(net->b, net->veth_b, "ip6 and tcp", pcap);
    const int port3 = serve_one(listener, net->addr_a, 5201, 0ms);
    std::this_thread::sleep_for(300ms);
    dump->stop();
    data.clear();
    for (const auto& g : segments_from(pcap, 5201))
      if (g.dport == port3 && g.len > 0) data.push_back(g);
  }
  ASSERT_EQ(data.size(), 2u) << proc->log();
  EXPECT_EQ(data[0].label & kLabelSemanticMask, tag)
      << "marked from the first packet again: 0x" << std::hex << data[0].label;
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report retry15d N1: a marker added by a reload while the kernel plugin runs on (its section
// unchanged) marked only the connections that opened afterwards: the live ones the plugin followed,
// opened while no marker ran, stayed unmarked for their whole life (a few were marked by accident,
// when the plugin's program kept writing the removed marker's pinned map). Now the plugin writes
// them into the map when it sees it appear, with their tag, recorded as its program's own marks,
// and the log says how many. The marker was there before with a pinned map, and removed: the
// connections that closed while it was away leave nothing behind when it comes back.
TEST_F(KernelIssue15, AMarkerAddedByAReloadMarksTheLiveConnectionsThatOpenedWithoutIt) {
  Bpffs bpffs(dir.file("bpffs"));
  ASSERT_TRUE(bpffs.ok);
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  std::string with_marker = config_with_marker("kernel", kRule5201Keys);
  with_marker.replace(with_marker.find("pin_path =\n"), 11,
                      "pin_path = " + bpffs.path + "/flow_labels\n");
  start_flowd(with_marker, "following TCP state changes");
  std::vector<Pair> before;
  ASSERT_NO_FATAL_FAILURE(accept_reported(before, fds, listener, 3));
  ASSERT_EQ(wait_metric("flowd_marker_flows", 3), 3) << proc->log();
  reload(config("kernel", kRule5201Keys));
  const std::string none = "the marker has no flow map to mark after a reload (no marker runs)";
  for (int i = 0; i < 100 && count(none) == 0; ++i) scrape();  // a scrape is a connection event
  ASSERT_EQ(count(none), 1) << proc->log();
  close_pair(fds, before[0]);
  close_pair(fds, before[1]);
  ASSERT_EQ(events(2).size(), 2u) << proc->log();
  std::vector<Pair> live{before[2]};
  ASSERT_NO_FATAL_FAILURE(accept_reported(live, fds, listener, 20));
  reload(with_marker);
  // The plugin sees the map at its next read (a scrape's connection is one); the marker dropped the
  // two closed connections' entries from its pinned map at its start.
  EXPECT_EQ(wait_metric("flowd_marker_flows", 21), 21)
      << "the 20 opened without a marker, and the one marked before\n"
      << proc->log();
  EXPECT_EQ(count("wrote 20 live connections it follows into the marker's map"), 1) << proc->log();
  EXPECT_EQ(count("; 1 held already"), 1) << proc->log();
  expect_next_data_labelled(live, make_label(2, 9, 0));
  for (auto& p : live) close_pair(fds, p);
  ASSERT_EQ(events(21).size(), 21u) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0) << "each one's end took its mark out\n"
                                                     << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// The same with a reload that adds the marker and restarts the kernel plugin (ring_buffer_size):
// the successor starts with a marker's map its predecessor's program did not write. Before, 0 of
// the 20 live connections were marked.
TEST_F(KernelIssue15, ASuccessorWithAMapItsPredecessorLackedMarksTheLiveConnections) {
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  start_flowd(config("kernel", kRule5201Keys), "following TCP state changes");
  std::vector<Pair> live;
  ASSERT_NO_FATAL_FAILURE(accept_reported(live, fds, listener, 20));
  reload(config_with_marker("kernel", std::string(kRule5201Keys) + "ring_buffer_size = 65536\n"));
  EXPECT_EQ(wait_metric("flowd_marker_flows", 20), 20) << proc->log();
  EXPECT_EQ(count("after a reload; 20 connections followed on from before the reload"), 1)
      << "restarted\n"
      << proc->log();
  EXPECT_EQ(count("wrote 20 live connections it follows into the marker's map"), 1) << proc->log();
  expect_next_data_labelled(live, make_label(2, 9, 0));
  for (auto& p : live) close_pair(fds, p);
  ASSERT_EQ(events(20).size(), 20u) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0) << proc->log();
  // A restart that keeps the marker's map writes nothing in: the marker heard every start.
  reload(config_with_marker("kernel", std::string(kRule5201Keys) + "ring_buffer_size = 131072\n"));
  live.clear();
  ASSERT_NO_FATAL_FAILURE(accept_reported(live, fds, listener, 2));
  reload(config_with_marker("kernel", kRule5201Keys));
  EXPECT_EQ(wait_metric("flowd_marker_flows", 2), 2) << proc->log();
  EXPECT_EQ(count("it follows into the marker's map"), 1) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// The marker removed and added again by two reloads before the plugin read anything in between:
// its program still wrote the removed marker's map (not pinned: gone with it), and the new one,
// which took nothing over, lacks the live connections. Before, the plugin took it for a map that
// changed size (the marker copies those) and wrote nothing in.
TEST_F(KernelIssue15, AMarkerRemovedAndAddedBackBeforeThePluginLookedMarksTheLiveConnections) {
  Fds fds;
  const int listener = listen_in_a(fds, 5201);
  ASSERT_GE(listener, 0);
  start_flowd(config_with_marker("kernel", kRule5201Keys), "following TCP state changes");
  std::vector<Pair> live;
  ASSERT_NO_FATAL_FAILURE(accept_reported(live, fds, listener, 5));
  ASSERT_EQ(wait_metric("flowd_marker_flows", 5), 5) << proc->log();
  reload(config("kernel", kRule5201Keys));  // no scrape in between: nothing wakes the plugin
  reload(config_with_marker("kernel", kRule5201Keys));
  EXPECT_EQ(wait_metric("flowd_marker_flows", 5), 5) << proc->log();
  EXPECT_EQ(count("wrote 5 live connections it follows into the marker's map"), 1) << proc->log();
  expect_next_data_labelled(live, make_label(2, 9, 0));
  for (auto& p : live) close_pair(fds, p);
  ASSERT_EQ(events(5).size(), 5u) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15c item 11: a start with report_existing says what it reported (not "adopted", which
// means silent), and a reload that restarts the plugin says it is one, not a start; the netlink
// scanner likewise.
TEST_F(KernelIssue15, AReloadIsNotAStartInTheLog) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  {
    NetnsScope in_a(net->a);
    ASSERT_GE(fds.add(tcp_connect("198.18.0.2", 5000)), 0);
  }
  for (const std::string plugin : {"kernel", "netlink"}) {
    const std::string ready = plugin == "kernel" ? "following TCP state changes" : "scanning TCP";
    start_flowd(config(plugin, kTagKeys + "report_existing = yes\n"), ready);
    EXPECT_EQ(count("; 1 connection found at start, 1 reported (report_existing)"), 1)
        << proc->log();
    EXPECT_EQ(count("adopted"), 0) << proc->log();
    ASSERT_EQ(events(1).size(), 1u) << proc->log();
    reload(config(plugin, kTagKeys + "report_existing = yes\ninterval = 3s\n"));
    for (int i = 0; i < 300 && count("after a reload") == 0; ++i) usleep(10000);
    EXPECT_EQ(count(plugin == "kernel"
                        ? "after a reload; 1 connection followed on from before the reload, gap "
                          "included; 0 more found by the dump"
                        : "after a reload; 1 connection followed on from before the reload; 0 new "
                          "started by the first scan"),
              1)
        << proc->log();
    EXPECT_EQ(count("found at start"), 1) << "said once, at the start\n" << proc->log();
    EXPECT_TRUE(events(1, 1000ms).empty()) << "no second start";
    proc->signal(SIGTERM);
    EXPECT_EQ(proc->wait(5s), 0);
    events(1);  // the end at the stop
  }
}

// Defect 15: one connection is "1 connection" in the log.
TEST_F(KernelIssue15, OneConnectionIsSaidInTheSingular) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5000), 0);
  {
    NetnsScope in_a(net->a);
    ASSERT_GE(fds.add(tcp_connect("198.18.0.2", 5000)), 0);
  }
  start_flowd(config("kernel", kTagKeys), "following TCP state changes");
  EXPECT_NE(proc->log().find("; 1 connection adopted at start"), std::string::npos) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15d D1: a reload gives the marker a new map (max_flows) and the plugin switches its
// program at its next read; the old program's ring overflowed before that read (flowd stopped while
// the connections closed). The loss is logged and repaired by a resync: every connection ends.
// Before, it was only counted; 54 of 100 flows stayed active (and marked) for ever.
TEST_F(KernelNetns, ARingThatOverflowedBeforeTheSwitchToTheMarkersNewMapIsRepaired) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5010), 0);
  const std::string keys = kTagKeys + kSmallRing;
  start_flowd(config_with_marker("kernel", keys), "following TCP state changes");
  std::vector<int> ports;
  auto clients = open_in_batches(5010, 100, ports);
  ASSERT_EQ(clients.size(), 100u);
  reload(config_with_marker("kernel", keys) + "max_flows = 4096\n");
  // No scrape until the end: its loopback connection would wake the plugin before the overflow.
  stop_all_threads(*proc);
  const std::string m = close_and_expect_each_ended_once(clients, ports);
  EXPECT_GE(counter(m, "flowd_kernel_resyncs_total"), 1) << m;
  EXPECT_GE(count("the ring buffer was full"), 1) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15d D3: a reload restarts the plugin; while the new program loads, flowd is stopped
// and the connections close, so the old program's ring overflows before the new plugin reads it.
// The loss is logged and the dump that follows is counted as the resync it is. Before, only
// flowd_kernel_events_lost_total grew: no log line, flowd_kernel_resyncs_total unchanged.
TEST_F(KernelNetns, ALossInThePredecessorsRingIsLoggedAndItsRepairCounted) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5011), 0);
  const std::string keys = kTagKeys + kSmallRing;
  start_flowd(config("kernel", keys), "following TCP state changes");
  std::vector<int> ports;
  auto clients = open_in_batches(5011, 100, ports);
  ASSERT_EQ(clients.size(), 100u);
  const double resyncs = counter(scrape(), "flowd_kernel_resyncs_total");
  const int full = count("the ring buffer was full");
  dir.write("flowd.cfg", config("kernel", keys + "interval = 3s\n"));
  const int stopped = count("stopped plugin kernel");
  proc->signal(SIGHUP);
  // Stopped while the new program loads (tens of ms): the old one, attached, nobody reading it.
  for (int i = 0; i < 5000 && count("stopped plugin kernel") == stopped; ++i) usleep(200);
  stop_all_threads(*proc);
  const bool in_the_gap = count("started plugin kernel") == 1;
  const std::string m = close_and_expect_each_ended_once(clients, ports);
  EXPECT_GT(counter(m, "flowd_kernel_resyncs_total"), resyncs) << m << proc->log();
  EXPECT_GT(count("the ring buffer was full"), full) << proc->log();
  if (in_the_gap)
    EXPECT_EQ(count("the ring buffer was full across the reload"), 1) << proc->log();
  else
    std::cout << "(flowd was stopped after the new program's start: the loss was its own ring's)\n";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15d D4: reloads that change the marker's map while connections come and go. The marker
// stops before its successor starts; a read of the kernel plugin in between found no marker,
// switched its program to no map and back, and logged that no marker ran. Now it waits for the
// reload's end, and every connection is still paired.
TEST_F(KernelNetns, AMarkerReplacedByAReloadIsNotTakenForNoMarker) {
  Fds fds;
  ASSERT_GE(listen_in_b(fds, 5012), 0);
  start_flowd(config_with_marker("kernel", kTagKeys), "following TCP state changes");
  std::vector<int> ports;
  std::atomic<bool> done{false};
  std::jthread load([&] {
    ports = short_connections(5012, 1200, 4, 2ms);
    done = true;
  });
  int reloads = 0;
  for (; !done && reloads < 12; ++reloads)
    reload(config_with_marker("kernel", kTagKeys) +
           "max_flows = " + std::to_string(reloads % 2 ? 8192 : 4096) + "\n");
  load.join();
  EXPECT_GE(reloads, 4) << "the connections outlasted a few reloads";
  ASSERT_EQ(ports.size(), 1200u);
  auto t = tally(events(2400, 3000ms), 2, 9);
  int once = 0;
  for (int p : ports) once += t.starts[p] == 1 && t.ends[p] == 1;
  EXPECT_EQ(once, 1200) << unpaired(ports, t) << pipeline_counts() << proc->log();
  EXPECT_EQ(count("no marker runs"), 0) << proc->log();
  EXPECT_EQ(count("the marker's flow map is back"), 0) << proc->log();
  EXPECT_GE(count("now marks the new map"), 1) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Report try15d D9: without the capabilities, each reload that restarts the plugin gave the same
// warning again (27 in one run). The first says why; a successor of a plugin that polled says it
// polls still, as an info line.
TEST_F(KernelNetns, WithoutCapabilitiesAReloadDoesNotRepeatTheWarning) {
  std::string out;
  if (run_shell("command -v setpriv", "", out) != 0) GTEST_SKIP() << "setpriv not installed";
  const std::vector<std::string> unprivileged = {
      "setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"};
  start_flowd(config("kernel", kTagKeys + "interval = 200ms\n"), "scanning TCP connections",
              unprivileged);
  for (const char* interval : {"300ms", "400ms"})
    reload(config("kernel", kTagKeys + "interval = " + interval + "\n"));
  EXPECT_EQ(count("warning [plugin.kernel] cannot follow TCP state changes in the kernel"), 1)
      << proc->log();
  EXPECT_EQ(count("info [plugin.kernel] cannot follow TCP state changes in the kernel"), 2)
      << proc->log();
  EXPECT_EQ(count("instead, as the netlink plugin (as before the reload)"), 2) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// Issue 15 E3 (the flow journal): flowd killed with -9 while two connections it reported are live;
// one closes while no flowd runs. The restart ends the closed one once, with its first start time,
// and follows the open one on: no second start, and its end when it closes. Before, the closed one
// never ended and the open one was adopted silently at the restart: its close was not reported.
class FlowJournalNetns : public KernelIssue15 {
 protected:
  // The client's port of a connection to [addr_a]:5201 reported by the kernel plugin.
  static int client_port_of(const Event& e) { return e.src_port == 5201 ? e.dst_port : e.src_port; }
  std::map<int, Event> by_client(const std::vector<Event>& ev) const {
    std::map<int, Event> m;
    for (const auto& e : ev) m[client_port_of(e)] = e;
    return m;
  }
  int listen_5201(Fds& fds) {
    NetnsScope in_a(net->a);
    return fds.add(tcp_listen("::", 5201));
  }
  // flowd with `cfg` (the kernel plugin) reports one connection to 5201, which stays open, and
  // stops cleanly (ending it): the journal's connection to start again. False on a failed step.
  bool stopped_with_open_connection(Fds& fds, const std::string& cfg, Pair& pair) {
    const int listener = listen_5201(fds);
    if (listener < 0) return false;
    start_flowd(cfg, "following TCP state changes");
    pair = accept_one(fds, listener);
    if (events(1).size() != 1u) return false;
    proc->signal(SIGTERM);
    if (proc->wait(5s) != 0) return false;
    return events(1, 2000ms).size() == 1u;  // the stop's end
  }
  void kill9_case(const std::string& plugin, const std::string& keys, const std::string& ready);
  void reused_case(const std::string& plugin, const std::string& keys, const std::string& ready);
  // try15h D4: the connections a clean stop ended start again as the new configuration says.
  void retag_case(const std::string& plugin, const std::string& extra, const std::string& ready);
  // One connection from [addr_b]:`sport` (bound, so that a later one can take the same 4-tuple)
  // to [addr_a]:5201, accepted on `listener`.
  Pair accept_from(Fds& fds, int listener, int sport) {
    Pair p;
    {
      NetnsScope in_b(net->b);
      sockaddr_storage me{}, to{};
      const socklen_t me_len = make_sockaddr(net->addr_b, sport, me);
      const socklen_t to_len = make_sockaddr(net->addr_a, 5201, to);
      int fd = ::socket(me.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&me), me_len) != 0 ||
          ::connect(fd, reinterpret_cast<sockaddr*>(&to), to_len) != 0) {
        ::close(fd);
        fd = -1;
      }
      p.client = fds.add(fd);
      p.port = sport;
    }
    EXPECT_GE(p.client, 0) << std::strerror(errno);
    p.conn = fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_GE(p.conn, 0);
    return p;
  }
  // Closes both ends, the client's with a reset: no TIME-WAIT keeps its 4-tuple from a new one.
  static void reset_pair(Fds& fds, Pair& p) {
    linger l{1, 0};
    ::setsockopt(p.client, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close_pair(fds, p);
  }
  // The sum of flowd_active_flows over the local origin's series in the scrape `m`.
  static double local_active_flows(const std::string& m) {
    double sum = 0;
    std::istringstream in(m);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("flowd_active_flows{", 0) == 0 &&
          line.find("origin=\"local\"") != std::string::npos)
        sum += std::stod(line.substr(line.rfind(' ') + 1));
    return sum;
  }
  // The journal file flowd keeps in work_dir (one per network namespace).
  std::string journal_file() const {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir.file("cache"), ec)) {
      const std::string name = e.path().filename();
      if (name.rfind("flows.", 0) == 0 && name.size() > 8 &&
          name.compare(name.size() - 8, 8, ".journal") == 0)
        return e.path();
    }
    return {};
  }
};

// The kill -9 case for a plugin (`kernel`, or a polling scanner) whose first dump is done once
// `ready` is logged.
void FlowJournalNetns::kill9_case(const std::string& plugin, const std::string& keys,
                                  const std::string& ready) {
  Fds fds;
  const int listener = listen_5201(fds);
  ASSERT_GE(listener, 0);
  const std::string cfg = config(plugin, keys);
  start_flowd(cfg, ready);
  std::vector<Pair> pairs{accept_one(fds, listener), accept_one(fds, listener)};
  auto starts = by_client(events(2));
  ASSERT_EQ(starts.size(), 2u) << proc->log();
  for (const auto& p : pairs) {
    ASSERT_TRUE(starts.contains(p.port)) << p.port;
    EXPECT_EQ(starts[p.port].state, "start");
  }
  proc->signal(SIGKILL);
  ASSERT_EQ(proc->wait(5s), 128 + SIGKILL);
  close_pair(fds, pairs[0]);            // while no flowd runs
  std::this_thread::sleep_for(1100ms);  // fireflies carry times to the second
  start_flowd(cfg, ready);
  auto after = events(2, 2000ms);
  ASSERT_EQ(after.size(), 1u) << "one end, and no start again\n" << proc->log();
  EXPECT_EQ(after[0].state, "end");
  EXPECT_EQ(client_port_of(after[0]), pairs[0].port);
  EXPECT_EQ(after[0].start_time, starts[pairs[0].port].start_time) << "its first start time";
  EXPECT_NE(after[0].end_time, after[0].start_time);
  EXPECT_EQ(count("stopped without ending 2 flows"), 1) << proc->log();
  if (plugin == "kernel") {
    EXPECT_EQ(count("1 connection started before the restart followed on"), 1) << proc->log();
  }
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"followed\"}"), 1) << m;
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"ended\"}"), 1) << m;
  EXPECT_EQ(local_active_flows(m), 1) << "the one followed on is active\n" << m;
  close_pair(fds, pairs[1]);
  auto last = events(2, 2000ms);
  ASSERT_EQ(last.size(), 1u) << proc->log();
  EXPECT_EQ(last[0].state, "end");
  EXPECT_EQ(client_port_of(last[0]), pairs[1].port);
  EXPECT_EQ(last[0].start_time, starts[pairs[1].port].start_time) << "its first start time";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

TEST_F(FlowJournalNetns, AfterKill9TheRestartEndsWhatClosedAndFollowsWhatIsStillOpen) {
  kill9_case("kernel", kRule5201Keys, "following TCP state changes");
}

TEST_F(FlowJournalNetns, AfterKill9ARestartedNetlinkScannerFollowsOnWhatIsStillOpen) {
  kill9_case("netlink", std::string(kRule5201Keys) + "interval = 200ms\n",
             "scanning TCP connections");
}

// try15g 3: flowd killed with -9 while a connection it reported is open; the connection closes and
// a new one takes its 4-tuple (a client with a fixed source port) while no flowd runs. The restart
// sees another socket cookie on the 4-tuple than the journal's: the old flow ends at the restart,
// once, and the new connection is started, and ended at its close. Before, the new connection was
// taken for the old one: no end of the old flow until the new one closed, and no start of the new.
void FlowJournalNetns::reused_case(const std::string& plugin, const std::string& keys,
                                   const std::string& ready) {
  Fds fds;
  const int listener = listen_5201(fds);
  ASSERT_GE(listener, 0);
  constexpr int kSport = 40321;
  const std::string cfg = config(plugin, keys);
  start_flowd(cfg, ready);
  Pair old_pair = accept_from(fds, listener, kSport);
  auto first = events(1);
  ASSERT_EQ(first.size(), 1u) << proc->log();
  ASSERT_EQ(first[0].state, "start");
  ASSERT_EQ(client_port_of(first[0]), kSport);
  std::string journal;
  for (int i = 0; i < 50 && journal.find("cookie=") == std::string::npos; ++i) {
    std::this_thread::sleep_for(20ms);
    std::ifstream in(journal_file());
    journal.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(journal.find("cookie="), std::string::npos) << "the start's socket cookie\n" << journal;
  proc->signal(SIGKILL);
  ASSERT_EQ(proc->wait(5s), 128 + SIGKILL);
  reset_pair(fds, old_pair);  // while no flowd runs
  Pair new_pair = accept_from(fds, listener, kSport);
  ASSERT_GE(new_pair.conn, 0);
  std::this_thread::sleep_for(1100ms);  // fireflies carry times to the second
  start_flowd(cfg, ready);
  auto after = events(3, 2000ms);
  ASSERT_EQ(after.size(), 2u) << "the old flow's end and the new connection's start\n"
                              << proc->log();
  EXPECT_EQ(after[0].state, "end");
  EXPECT_EQ(after[0].start_time, first[0].start_time) << "the old flow's";
  EXPECT_NE(after[0].end_time, after[0].start_time) << "ended at the restart";
  EXPECT_EQ(after[1].state, "start");
  EXPECT_NE(after[1].start_time, first[0].start_time) << "a flow of its own";
  for (const auto& e : after) EXPECT_EQ(client_port_of(e), kSport);
  EXPECT_EQ(count("whose 4-tuple a new connection took meanwhile"), 1) << proc->log();
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"ended\"}"), 1) << m;
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"followed\"}"), 0) << m;
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"restarted\"}"), 0) << m;
  EXPECT_EQ(local_active_flows(m), 1) << "the new connection is active\n" << m;
  close_pair(fds, new_pair);
  auto last = events(2, 2000ms);
  ASSERT_EQ(last.size(), 1u) << "the new connection's end, once\n" << proc->log();
  EXPECT_EQ(last[0].state, "end");
  EXPECT_EQ(client_port_of(last[0]), kSport);
  EXPECT_EQ(last[0].start_time, after[1].start_time) << "the new connection's start";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

TEST_F(FlowJournalNetns, AFourTupleReusedWhileNoFlowdRanEndsTheOldFlowAndStartsTheNewOne) {
  reused_case("kernel", kRule5201Keys, "following TCP state changes");
}

TEST_F(FlowJournalNetns, AFourTupleReusedWhileNoFlowdRanIsANewFlowForTheNetlinkScannerToo) {
  reused_case("netlink", std::string(kRule5201Keys) + "interval = 200ms\n",
              "scanning TCP connections");
}

// try15f D2: a clean stop ends the kernel plugin's flows (its collector gets their ends, the
// marker's entries go); the restart adopted the connections still open silently, so they were
// neither reported nor marked until they closed. The journal says which the stop ended: those open
// again start again at the restart (marked), and their close gives the end.
TEST_F(FlowJournalNetns, AConnectionOpenAcrossACleanRestartIsStartedAgainAndMarked) {
  Fds fds;
  const int listener = listen_5201(fds);
  ASSERT_GE(listener, 0);
  const std::string cfg = config_with_marker("kernel", kRule5201Keys);
  start_flowd(cfg, "following TCP state changes");
  std::vector<Pair> pairs{accept_one(fds, listener), accept_one(fds, listener)};
  auto starts = by_client(events(2));
  ASSERT_EQ(starts.size(), 2u) << proc->log();
  ASSERT_EQ(wait_metric("flowd_marker_flows", 2), 2) << proc->log();
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);
  auto stop_ends = events(2, 2000ms);
  ASSERT_EQ(stop_ends.size(), 2u) << "the stop ends both";
  close_pair(fds, pairs[0]);            // while no flowd runs
  std::this_thread::sleep_for(1100ms);  // fireflies carry times to the second
  start_flowd(cfg, "following TCP state changes");
  auto after = events(2, 2000ms);
  ASSERT_EQ(after.size(), 1u) << "the open one starts again, the closed one gives nothing\n"
                              << proc->log();
  EXPECT_EQ(after[0].state, "start");
  EXPECT_EQ(client_port_of(after[0]), pairs[1].port);
  EXPECT_NE(after[0].start_time, starts[pairs[1].port].start_time) << "the restart's time";
  EXPECT_EQ(count("1 connection the previous flowd"), 1) << proc->log();
  EXPECT_EQ(count("ended at its stop is still open: started again"), 1) << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << "marked again\n" << proc->log();
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"restarted\"}"), 1) << m;
  close_pair(fds, pairs[1]);
  auto last = events(2, 2000ms);
  ASSERT_EQ(last.size(), 1u) << proc->log();
  EXPECT_EQ(last[0].state, "end");
  EXPECT_EQ(client_port_of(last[0]), pairs[1].port);
  EXPECT_EQ(last[0].start_time, after[0].start_time);
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15h D4: a clean restart started the connections its stop had ended with the journal's tag:
// one the new configuration no longer reports (a rule gone, a network now internal) got a start,
// an end at its first dump and half a second of marking; one whose rule changed got the old tag.
// Now the plugin's first dump starts them as its configuration of now says.
void FlowJournalNetns::retag_case(const std::string& plugin, const std::string& extra,
                                  const std::string& ready) {
  Fds fds;
  int listener[2];
  {
    NetnsScope in_a(net->a);
    listener[0] = fds.add(tcp_listen("::", 5201));
    listener[1] = fds.add(tcp_listen("::", 5202));
  }
  ASSERT_GE(listener[0], 0);
  ASSERT_GE(listener[1], 0);
  const std::string common = "ignore_private = no\n" + extra;
  start_flowd(config_with_marker(plugin, "rules = 5201 2 9, 5202 2 9\n" + common +
                                             "internal_networks = 127.0.0.0/8\n"),
              ready);
  std::vector<Pair> pairs;
  for (int l : listener) {
    Pair p;
    {
      NetnsScope in_b(net->b);
      p.client = fds.add(tcp_connect(net->addr_a, l == listener[0] ? 5201 : 5202, &p.port));
    }
    p.conn = fds.add(::accept4(l, nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_GE(p.conn, 0);
    pairs.push_back(p);
  }
  auto starts = events(2);
  ASSERT_EQ(starts.size(), 2u) << proc->log();
  for (const auto& e : starts) EXPECT_EQ(e.exp, 2);
  ASSERT_EQ(wait_metric("flowd_marker_flows", 2), 2) << proc->log();
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);
  ASSERT_EQ(events(2, 2000ms).size(), 2u) << "the stop ends both";

  // The rule of 5201 now gives another tag; 5202 has none (and no default tag): not reported.
  start_flowd(config_with_marker(
                  plugin, "rules = 5201 3 3\n" + common + "internal_networks = 127.0.0.0/8\n"),
              ready);
  auto after = events(3, 2000ms);
  ASSERT_EQ(after.size(), 1u) << "only 5201's connection starts again, with its new tag: "
                              << said_of(after) << "\n"
                              << proc->log();
  EXPECT_EQ(after[0].state, "start");
  EXPECT_EQ(client_port_of(after[0]), pairs[0].port);
  EXPECT_EQ(after[0].exp, 3);
  EXPECT_EQ(after[0].act, 3);
  EXPECT_EQ(count("2 connections the previous flowd"), 1) << proc->log();
  EXPECT_EQ(count("to start again, 1 started as this configuration tags them, 1 not"), 1)
      << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << proc->log();
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);
  after = events(2, 2000ms);
  ASSERT_EQ(after.size(), 1u) << "the stop ends 5201's: " << said_of(after);
  EXPECT_EQ(after[0].state, "end");
  EXPECT_EQ(after[0].exp, 3);

  // The peer's network is internal now: the connection is not reported, nor marked.
  start_flowd(
      config_with_marker(plugin, "rules = 5201 3 3\n" + common +
                                     "internal_networks = 127.0.0.0/8, " + net->addr_b + "/128\n"),
      ready);
  after = events(2, 2000ms);
  EXPECT_TRUE(after.empty()) << "nothing of an excluded connection: " << said_of(after) << "\n"
                             << proc->log();
  EXPECT_EQ(count("to start again, 0 started as this configuration tags them, 1 not"), 1)
      << proc->log();
  EXPECT_EQ(wait_metric("flowd_marker_flows", 0), 0) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15j D1: the connections to start again were kept in memory only, and the start rewrote the
// journal before its plugins ran: a start that died first (a plugin that cannot start, a kill)
// left the next one nothing to start, which then adopted them silently (unreported, unmarked). The
// journal keeps them (R lines) until the plugin's first dump has started them.
TEST_F(FlowJournalNetns, AStartThatFailsBeforeItsPluginsRunLeavesTheConnectionsToStartAgain) {
  Fds fds;
  Pair pair;
  const std::string cfg = config_with_marker("kernel", kRule5201Keys);
  ASSERT_TRUE(stopped_with_open_connection(fds, cfg, pair)) << (proc ? proc->log() : "");
  // np_api first, and its pipe cannot be made: flowd exits before the kernel plugin runs, after
  // its backends started (and the journal was rewritten).
  std::string failing = cfg;
  const std::string plugins = "plugins = kernel";
  ASSERT_NE(failing.find(plugins), std::string::npos) << failing;
  failing.replace(failing.find(plugins), plugins.size(), "plugins = np_api, kernel");
  failing += "[plugin.np_api]\npath = /proc/flowd-test-none/np\n";
  dir.write("failing.cfg", failing);
  std::string out;
  EXPECT_NE(run_shell("ip netns exec " + net->a + " " + flowd_binary() + " -c " +
                          dir.file("failing.cfg") + " 2>&1",
                      "", out),
            0)
      << out;
  EXPECT_NE(out.find("cannot start: mkfifo"), std::string::npos) << out;
  EXPECT_TRUE(events(1, 1000ms).empty()) << "nothing sent by the failed start";
  start_flowd(cfg, "following TCP state changes");
  auto after = events(2, 2000ms);
  ASSERT_EQ(after.size(), 1u) << "the connection starts again\n" << proc->log();
  EXPECT_EQ(after[0].state, "start");
  EXPECT_EQ(client_port_of(after[0]), pair.port);
  EXPECT_EQ(wait_metric("flowd_marker_flows", 1), 1) << proc->log();
  // Taken by the plugin: the journal keeps no R line, so the start after this one's stop offers
  // only what that stop ended.
  std::string journal;
  {
    std::ifstream in(journal_file());
    journal.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_EQ(journal.find("\nR "), std::string::npos) << journal;
  close_pair(fds, pair);
  auto last = events(1, 2000ms);
  ASSERT_EQ(last.size(), 1u) << proc->log();
  EXPECT_EQ(last[0].state, "end");
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15k: the connections a clean stop ended whose plugin the next configuration does not run
// were dropped from the journal without a word. Said in the log now, and nothing is sent.
TEST_F(FlowJournalNetns, AStartWithoutTheirPluginSaysItDoesNotStartTheStopsConnectionsAgain) {
  Fds fds;
  Pair pair;
  const std::string cfg = config_with_marker("kernel", kRule5201Keys);
  ASSERT_TRUE(stopped_with_open_connection(fds, cfg, pair)) << (proc ? proc->log() : "");
  std::string np_only = cfg;
  const std::string plugins = "plugins = kernel";
  ASSERT_NE(np_only.find(plugins), std::string::npos) << np_only;
  np_only.replace(np_only.find(plugins), plugins.size(), "plugins = np_api");
  np_only += "[plugin.np_api]\npath = " + dir.file("np") + "\n";
  start_flowd(np_only, "started plugin np_api");
  EXPECT_NE(proc->log().find("1 connection the previous flowd ended at its stop is of plugins this "
                             "configuration does not run (1 kernel): not started again"),
            std::string::npos)
      << proc->log();
  EXPECT_TRUE(events(1, 1000ms).empty()) << "nothing sent for it";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
  close_pair(fds, pair);
}

TEST_F(FlowJournalNetns, ACleanRestartStartsTheConnectionsItEndedAsTheNewConfigurationTagsThem) {
  retag_case("kernel", "", "following TCP state changes");
}

TEST_F(FlowJournalNetns, ACleanRestartOfTheNetlinkScannerStartsThemAsItsNewConfigurationTagsThem) {
  retag_case("netlink", "interval = 200ms\n", "scanning TCP connections");
}

// try15g 1: np_api took a connection over from the kernel plugin, flowd was killed, the connection
// closed. The restart ended both reports: an end of the kernel's tag (2) whose flow had ended at
// the tool's start. Only the tool's report reached the backends last: only its end goes out.
TEST_F(FlowJournalNetns, AfterKill9AConnectionAToolTookOverEndsOnceWithTheToolsTag) {
  Fds fds;
  int client_port = 0, conn = -1;
  ASSERT_NO_FATAL_FAILURE(rule_connection_beside_np_api(fds, client_port, conn));
  auto seen = events(1);
  const std::string tuple = np_tuple(client_port);
  pipe_line("start" + tuple + "3 3");
  auto more = events(2);
  seen.insert(seen.end(), more.begin(), more.end());
  std::string said = said_of(seen);
  ASSERT_EQ(said, "start 2; end 2; start 3; ") << proc->log();
  proc->signal(SIGKILL);
  ASSERT_EQ(proc->wait(5s), 128 + SIGKILL);
  ::close(conn);
  fds.fds.back() = -1;
  std::this_thread::sleep_for(1100ms);
  start_flowd(with_np_api(kRuleKeys), "following TCP state changes");
  auto after = events(3, 2000ms);
  said = said_of(after);
  EXPECT_EQ(said, "end 3; ") << proc->log();
  EXPECT_EQ(count("1 a tool's report covered dropped"), 1) << proc->log();
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// try15g 2: a flow neither of whose addresses is this namespace's (a tool in a container of its
// own) cannot be looked up here: the periodic check leaves it to its end, and so does the restart
// now. Before, every restart ended it ("closed while no flowd ran") while its transfer went on. The
// addresses are routed nowhere in namespace a, so no firefly to its peer leaves.
TEST_F(FlowJournalNetns, AFlowOfAnotherNamespaceIsFollowedOnAcrossARestart) {
  const std::string cfg = with_np_api(kRuleKeys);
  start_flowd(cfg, "following TCP state changes");
  pipe_line("start tcp fd00:99::1 41004 fd00:99::2 5001 3 3");
  auto first = events(1);
  ASSERT_EQ(first.size(), 1u) << proc->log();
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);
  std::this_thread::sleep_for(1100ms);
  start_flowd(cfg, "following TCP state changes");
  EXPECT_TRUE(events(1, 1500ms).empty()) << "not ended at the restart\n" << proc->log();
  EXPECT_EQ(count("1 still open, followed on by its plugins"), 1) << proc->log();
  pipe_line("end tcp fd00:99::1 41004 fd00:99::2 5001 3 3");
  auto last = events(1);
  ASSERT_EQ(last.size(), 1u) << proc->log();
  EXPECT_EQ(last[0].state, "end");
  EXPECT_EQ(last[0].start_time, first[0].start_time) << "the tool's end, with its start time";
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// np_api's reports are left live at a clean stop (the marker keeps marking them): after the
// restart the tool's end is the end of the flow it started, with its start time. Before, it was
// the end of a flow the new flowd did not know (start time = end time).
TEST_F(FlowJournalNetns, AnNpApiFlowLeftAtACleanStopEndsWithItsStartAfterTheRestart) {
  Fds fds;
  const int listener = listen_in_a(fds, 5001);
  ASSERT_GE(listener, 0);
  // The kernel plugin leaves the private fd00::/8 to np_api (ignore_private).
  const std::string cfg = beside_np_api(config("kernel",
                                               "experiment = 2\nactivity = 9\n"
                                               "internal_networks = 127.0.0.0/8\n"),
                                        "kernel");
  start_flowd(cfg, "following TCP state changes");
  int client_port = 0, client;
  {
    NetnsScope in_b(net->b);
    client = fds.add(tcp_connect(net->addr_a, 5001, &client_port));
  }
  ASSERT_GE(client, 0);
  ASSERT_GE(fds.add(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC)), 0);
  const std::string tuple = np_tuple(client_port);
  pipe_line("start" + tuple + "3 3");
  auto first = events(1);
  ASSERT_EQ(first.size(), 1u) << proc->log();
  EXPECT_EQ(first[0].state, "start");
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);
  EXPECT_TRUE(events(1, 500ms).empty()) << "np_api's flow is left as it is at a stop";
  std::this_thread::sleep_for(1100ms);  // fireflies carry times to the second
  start_flowd(cfg, "following TCP state changes");
  EXPECT_TRUE(events(1, 1000ms).empty()) << "nothing sent at the restart\n" << proc->log();
  // A clean stop left it on purpose: said so, and no warning (try15h).
  EXPECT_NE(proc->log().find("stopped cleanly and left live 1 flow"), std::string::npos)
      << proc->log();
  EXPECT_EQ(proc->log().find("stopped without ending"), std::string::npos) << proc->log();
  pipe_line("end" + tuple + "3 3");
  auto end = events(1);
  ASSERT_EQ(end.size(), 1u) << proc->log();
  EXPECT_EQ(end[0].state, "end");
  EXPECT_EQ(end[0].exp, 3);
  EXPECT_EQ(end[0].start_time, first[0].start_time) << "the start the collector has";
  EXPECT_NE(end[0].end_time, end[0].start_time);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}

// A journal cut short by the kill, with a line of garbage in it: both skipped and counted, the
// rest read. An empty work_dir keeps no journal, and flowd runs as before.
TEST_F(FlowJournalNetns, BadJournalLinesAreSkippedAndCountedAndNoWorkDirKeepsNone) {
  const std::string cfg = config("kernel", kRule5201Keys);
  start_flowd(cfg, "following TCP state changes");
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);
  const std::string path = journal_file();
  ASSERT_FALSE(path.empty()) << "a journal in work_dir";
  {
    std::ofstream out(path, std::ios::app);
    out << "S kernel i tcp 198.18.0.1 40000 198.18.0.2 5201 2 9 99999999999999999999\n"
        << "not a journal line\n"
        << "S kernel i tcp 198.18.0.1 40001 198.18.0.2 5201 2 9 1764000000000000\n"
        << "S kernel i tcp 198.18.0.1 40002 198";  // cut by the kill
  }
  start_flowd(cfg, "following TCP state changes");
  std::string m = scrape();
  EXPECT_EQ(counter(m, "flowd_flow_journal_lines_skipped_total{reason=\"truncated\"}"), 1) << m;
  EXPECT_EQ(counter(m, "flowd_flow_journal_lines_skipped_total{reason=\"malformed\"}"), 2) << m;
  // The good line's connection is not open: ended at the start, once.
  EXPECT_EQ(counter(m, "flowd_flow_journal_recovered_total{outcome=\"ended\"}"), 1) << m;
  auto ended = events(2, 1500ms);
  ASSERT_EQ(ended.size(), 1u) << proc->log();
  EXPECT_EQ(ended[0].state, "end");
  EXPECT_EQ(ended[0].src_port, 40001);
  EXPECT_NE(proc->log().find(path + " line 3: not a journal line"), std::string::npos)
      << proc->log();
  EXPECT_NE(proc->log().find("cut short"), std::string::npos) << proc->log();
  proc->signal(SIGTERM);
  ASSERT_EQ(proc->wait(5s), 0);

  std::string no_dir = cfg;
  const std::string key = "work_dir = " + dir.file("cache");
  no_dir.replace(no_dir.find(key), key.size(), "work_dir =");
  std::filesystem::remove_all(dir.file("cache"));
  Fds fds;
  const int listener = listen_5201(fds);
  ASSERT_GE(listener, 0);
  start_flowd(no_dir, "following TCP state changes");
  EXPECT_NE(proc->log().find("no flow journal is kept"), std::string::npos) << proc->log();
  Pair p = accept_one(fds, listener);
  ASSERT_EQ(events(1).size(), 1u) << proc->log();
  close_pair(fds, p);
  ASSERT_EQ(events(1).size(), 1u) << proc->log();
  EXPECT_TRUE(journal_file().empty());
  EXPECT_EQ(counter(scrape(), "flowd_flow_journal_bytes"), 0);
  proc->signal(SIGTERM);
  EXPECT_EQ(proc->wait(5s), 0);
}
}  // namespace
}  // namespace flowd::test
