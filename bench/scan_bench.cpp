// SPDX-License-Identifier: Apache-2.0
// Cost of one connection scan at 1k, 10k and 100k established TCP connections (needs root):
//   flowd_scan_bench [--sizes 1000,10000,100000] [--rounds N]
// A helper part opens the connections between two network namespaces it creates (client ends in
// namespace A, accepted ends in B; RLIMIT_NOFILE raised), then in A, side by side on the same
// sockets:
//   - flowd's netlink scan: one sock_diag dump (SockDiag) + the ConnectionTracker pass, steady
//   state;
//   - the same dump with tcp_info/cong/meminfo (what the per-flow metrics and ongoing fireflies
//   use);
//   - flowd's netstat scan: /proc/net/tcp{,6} parsed + the tracker;
//   - `ss -tin` (output to /dev/null), a fresh process per poll;
//   - psutil.net_connections(kind="tcp") (Debian python3-psutil), timed inside one Python process.
// Wall time and CPU (user+sys) per poll are medians over the rounds. Memory per tracked flow is the
// heap growth (mallinfo2) of the tracker holding N connections, divided by N.
#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "netlink/sock_diag.hpp"
#include "plugins/netstat/proc_net_tcp.hpp"
#include "plugins/scanner/connection_tracker.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using flowd::scanner::Connection;

std::string ns_a, ns_b;

int sh(const std::string& cmd) {
  return std::system(cmd.c_str());
}

void die(const std::string& what) {
  std::fprintf(stderr, "scan_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  if (!ns_a.empty())
    sh("ip netns del " + ns_a + " 2>/dev/null; ip netns del " + ns_b + " 2>/dev/null");
  std::exit(1);
}

void enter(const std::string& ns) {
  int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) die("setns " + ns);
  ::close(fd);
}

double cpu_seconds(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

struct Sample {
  double wall_ms = 0, cpu_ms = 0;
};

Sample median(std::vector<Sample> v) {
  auto mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end(),
                   [](auto& a, auto& b) { return a.wall_ms < b.wall_ms; });
  Sample w = v[mid];
  std::nth_element(v.begin(), v.begin() + mid, v.end(),
                   [](auto& a, auto& b) { return a.cpu_ms < b.cpu_ms; });
  w.cpu_ms = v[mid].cpu_ms;
  return w;
}

template <class F>
Sample measure_inproc(int rounds, F&& f) {
  std::vector<Sample> out;
  // The thread's CPU clock (getrusage counts in scheduler ticks, too coarse for a 1k scan).
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
  };
  for (int i = 0; i < rounds; ++i) {
    double c0 = cpu_now();
    auto t0 = Clock::now();
    f();
    auto t1 = Clock::now();
    out.push_back({std::chrono::duration<double, std::milli>(t1 - t0).count(), cpu_now() - c0});
  }
  return median(out);
}

// Runs argv in namespace A with stdout to /dev/null; wall time and the child's CPU time.
Sample run_child(const std::vector<std::string>& args, std::string* output = nullptr) {
  int pipefd[2];
  if (output && ::pipe(pipefd) != 0) die("pipe");
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    enter(ns_a);
    int out = output ? pipefd[1] : ::open("/dev/null", O_WRONLY);
    ::dup2(out, 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    _exit(127);
  }
  std::string text;
  if (output) {
    ::close(pipefd[1]);
    char buf[4096];
    for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;)
      text.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    *output = text;
  }
  int st = 0;
  rusage ru{};
  ::wait4(pid, &st, 0, &ru);
  auto t1 = Clock::now();
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("child " + args[0] + " failed");
  return {std::chrono::duration<double, std::milli>(t1 - t0).count(), cpu_seconds(ru) * 1e3};
}

// Opens `n` established connections A -> B in the calling process (all fds stay open).
void open_connections(std::size_t n, std::size_t first, const std::vector<int>& listeners) {
  constexpr std::size_t kBatch = 1000;
  std::vector<int> fds;
  for (std::size_t done = 0; done < n;) {
    std::size_t batch = std::min(kBatch, n - done);
    enter(ns_a);
    for (std::size_t i = 0; i < batch; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(7000 + (first + done + i) % listeners.size()));
      inet_pton(AF_INET, "198.18.0.2", &a.sin_addr);
      if (c < 0 || ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
      fds.push_back(c);
    }
    for (std::size_t i = 0; i < batch; ++i) {
      int s = ::accept4(listeners[(first + done + i) % listeners.size()], nullptr, nullptr,
                        SOCK_CLOEXEC);
      if (s < 0) die("accept");
      fds.push_back(s);
    }
    done += batch;
  }
}

// Helper processes hold the connections: RLIMIT_NOFILE cannot be raised without CAP_SYS_RESOURCE,
// so each holds as many as its own limit allows, until its control pipe closes.
struct Helpers {
  std::vector<std::pair<pid_t, int>> procs;
  std::size_t count = 0;
  std::size_t per_helper = 1000;

  void grow_to(std::size_t n, const std::vector<int>& listeners) {
    while (count < n) {
      std::size_t k = std::min(per_helper, n - count);
      int ready[2], hold[2];
      if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(hold, O_CLOEXEC) != 0) die("pipe");
      pid_t pid = ::fork();
      if (pid < 0) die("fork");
      if (pid == 0) {
        ::close(ready[0]);
        ::close(hold[1]);
        for (auto& [p, fd] : procs) ::close(fd);
        open_connections(k, count, listeners);
        char one = 1;
        [[maybe_unused]] auto w = ::write(ready[1], &one, 1);
        char c;
        while (::read(hold[0], &c, 1) > 0) {
        }
        _exit(0);
      }
      ::close(ready[1]);
      ::close(hold[0]);
      char c;
      if (::read(ready[0], &c, 1) != 1) die("a connection helper failed");
      ::close(ready[0]);
      procs.emplace_back(pid, hold[1]);
      count += k;
    }
  }
  // Closing the control pipes ends the helpers and with them the connections.
  void release() {
    for (auto& [pid, fd] : procs) ::close(fd);
    for (auto& [pid, fd] : procs) ::waitpid(pid, nullptr, 0);
    procs.clear();
    count = 0;
  }
  ~Helpers() { release(); }
};

const char* kPsutil = R"(
import sys, time, psutil
rounds = int(sys.argv[1])
walls, cpus, n = [], [], 0
for _ in range(rounds):
    w0, c0 = time.perf_counter(), time.process_time()
    n = len(psutil.net_connections(kind="tcp"))
    walls.append((time.perf_counter() - w0) * 1e3); cpus.append((time.process_time() - c0) * 1e3)
walls.sort(); cpus.sort()
print(walls[len(walls) // 2], cpus[len(cpus) // 2], n)
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes{1000, 10000, 100000};
  int rounds = 0;
  bool netlink_only = false;
  bool shared_table = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::string list = argv[++i];
      for (std::size_t p = 0; p < list.size();) {
        auto c = list.find(',', p);
        sizes.push_back(std::stoul(list.substr(p, c - p)));
        p = c == std::string::npos ? list.size() : c + 1;
      }
    } else if (a == "--netlink-only") {
      netlink_only = true;  // for profiling the scan itself (perf record)
    } else if (a == "--shared-table") {
      shared_table = true;  // namespaces share the host's established table (the kernel's default)
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(
          stderr,
          "usage: %s [--sizes 1000,10000,100000] [--rounds N] [--netlink-only] [--shared-table]\n",
          argv[0]);
      return 2;
    }
  }
  std::size_t max_n = *std::max_element(sizes.begin(), sizes.end());
  if (geteuid() != 0) {
    std::fprintf(stderr, "scan_bench: needs root (network namespaces, RLIMIT_NOFILE)\n");
    return 2;
  }
  // Raise the soft limit to the hard one; helpers inherit it (2 fds per connection + slack).
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  std::string tag = std::to_string(getpid());
  ns_a = "flowdsb" + tag + "a";
  ns_b = "flowdsb" + tag + "b";
  std::string va = "vsb" + tag + "a", vb = "vsb" + tag + "b";
  // Each namespace gets its own established-hash table (net.ipv4.tcp_child_ehash_entries, read when
  // a namespace is created; put back at once), so A's table holds A's sockets only, as a host's
  // would. With the shared table every dump also walks B's sockets (and any other namespace's).
  std::string old_ehash;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_child_ehash_entries", "r")) {
    char buf[32] = {};
    if (std::fgets(buf, sizeof buf, f))
      old_ehash = std::string(buf).substr(0, std::strcspn(buf, "\n"));
    std::fclose(f);
  }
  bool own_table = !old_ehash.empty() && !shared_table;
  if (own_table && sh("sysctl -qw net.ipv4.tcp_child_ehash_entries=" +
                      std::to_string(std::max<std::size_t>(max_n, 1024) * 2)) != 0)
    die("sysctl tcp_child_ehash_entries");
  int created = sh("ip netns add " + ns_a + " && ip netns add " + ns_b);
  if (own_table) sh("sysctl -qw net.ipv4.tcp_child_ehash_entries=" + old_ehash);
  if (created != 0) die("ip netns add");
  if (sh("set -e; ip link add " + va + " type veth peer name " + vb + "; ip link set " + va +
         " netns " + ns_a + "; ip link set " + vb + " netns " + ns_b + "; ip -n " + ns_a +
         " addr add 198.18.0.1/24 dev " + va + "; ip -n " + ns_b + " addr add 198.18.0.2/24 dev " +
         vb + "; for n in " + ns_a + " " + ns_b + "; do ip -n $n link set lo up; done; ip -n " +
         ns_a + " link set " + va + " up; ip -n " + ns_b + " link set " + vb +
         " up; ip netns exec " + ns_a +
         " sysctl -qw net.ipv4.ip_local_port_range='1024 65535'; ip netns exec " + ns_b +
         " sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535") != 0)
    die("namespace set-up");

  std::vector<int> listeners;
  enter(ns_b);
  for (int p = 0; p < 4; ++p) {  // 4 x 64k ephemeral ports: room for 256k connections
    int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(7000 + p));
    inet_pton(AF_INET, "198.18.0.2", &a.sin_addr);
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 65535) != 0)
      die("listen");
    listeners.push_back(l);
  }
  Helpers helpers;
  helpers.per_helper = std::max<std::size_t>(1000, (rl.rlim_cur - 64) / 2);
  std::printf(
      "| connections | flowd netlink scan | netlink dump with tcp_info | flowd netstat scan | `ss "
      "-tin` | psutil "
      "`net_connections` | ss ÷ netlink | tracker memory |\n|---|---|---|---|---|---|---|---|\n");
  std::sort(sizes.begin(), sizes.end());
  for (std::size_t n : sizes) {
    auto t_open = Clock::now();
    helpers.grow_to(n, listeners);
    std::fprintf(stderr, "%zu connections open (%.1f s, %zu helper processes)\n", n,
                 std::chrono::duration<double>(Clock::now() - t_open).count(),
                 helpers.procs.size());
    enter(ns_a);
    int r = rounds ? rounds : (n >= 100000 ? 7 : 15);
    flowd::netlink::SockDiag diag;
    std::string error;
    flowd::scanner::ConnectionFilter filter;
    filter.ignore_private = false;
    auto tagger = [](const Connection&, bool&) {
      return std::optional<flowd::scanner::Tag>(flowd::scanner::Tag{2, 9});
    };

    // The tracker's heap per connection, and the steady-state scan (every connection known).
    std::vector<flowd::FlowID> events;
    events.reserve(2 * n + 16);  // the first scan's start events are not the tracker's memory
    struct mallinfo2 m0 = mallinfo2();
    flowd::scanner::ConnectionTracker tracker(filter, true, tagger);
    std::size_t seen = 0;
    auto netlink_scan = [&] {
      events.clear();
      seen = 0;
      auto now = flowd::Clock::now();
      Connection c;
      diag.dump(
          flowd::netlink::DumpRequest{~(1u << flowd::netlink::kTcpListen)},
          [&](const flowd::netlink::SockEntry& e, const flowd::netlink::TcpDetails*) {
            c.local = e.local;
            c.remote = e.remote;
            c.local_port = e.local_port;
            c.remote_port = e.remote_port;
            c.state = e.state;
            c.inode = e.inode;
            ++seen;
            tracker.observe(c, now, events);
          },
          error);
      tracker.finish(now, events);
    };
    netlink_scan();
    struct mallinfo2 m1 = mallinfo2();
    // Small blocks (uordblks) and mmap()ed ones (hblkhd: the tracker's table once it is large).
    double per_flow = (static_cast<double>(m1.uordblks + m1.hblkhd) -
                       static_cast<double>(m0.uordblks + m0.hblkhd)) /
                      static_cast<double>(tracker.tracked());
    if (seen < n) die(fmt::format("netlink scan saw {} of {} connections", seen, n));
    Sample nl = measure_inproc(r, netlink_scan);
    if (netlink_only) {
      // Where the time goes: each family's dump alone (the kernel walks the whole table for each).
      flowd::netlink::DumpRequest v4{~(1u << flowd::netlink::kTcpListen)}, v6 = v4;
      v4.ipv6 = false;
      v6.ipv4 = false;
      auto nothing = [](const flowd::netlink::SockEntry&, const flowd::netlink::TcpDetails*) {};
      Sample s4 = measure_inproc(r, [&] { diag.dump(v4, nothing, error); });
      Sample s6 = measure_inproc(r, [&] { diag.dump(v6, nothing, error); });
      std::printf(
          "| %zu | %.2f ms (%.2f ms CPU); IPv4 dump only %.2f ms, IPv6 dump only %.2f ms | | | | | "
          "| %.0f B/flow |\n",
          n, nl.wall_ms, nl.cpu_ms, s4.wall_ms, s6.wall_ms, per_flow);
      continue;
    }

    flowd::netlink::DumpRequest full;
    full.details = true;
    std::size_t with_info = 0;
    Sample nl_full = measure_inproc(r, [&] {
      with_info = 0;
      diag.dump(
          full,
          [&](const flowd::netlink::SockEntry&, const flowd::netlink::TcpDetails* d) {
            with_info += d != nullptr;
          },
          error);
    });
    if (with_info < n) die("dump with details missed connections");

    flowd::scanner::ConnectionTracker tracker2(filter, true, tagger);
    auto netstat_scan = [&] {
      events.clear();
      auto now = flowd::Clock::now();
      Connection c;
      for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        FILE* f = std::fopen(path, "r");
        if (!f) continue;
        char* line = nullptr;
        std::size_t cap = 0;
        bool header = true;
        for (ssize_t len; (len = getline(&line, &cap, f)) > 0;) {
          if (header) {
            header = false;
            continue;
          }
          if (flowd::netstat::parse_proc_net_tcp_line(
                  std::string_view(line, static_cast<std::size_t>(len) - 1), c) ==
              flowd::netstat::ProcLineError::kNone)
            tracker2.observe(c, now, events);
        }
        std::free(line);
        std::fclose(f);
      }
      tracker2.finish(now, events);
    };
    netstat_scan();
    Sample ns = measure_inproc(r, netstat_scan);

    std::vector<Sample> ss_runs;
    for (int i = 0; i < r; ++i) ss_runs.push_back(run_child({"ss", "-tin"}));
    Sample ss = median(ss_runs);

    std::string py_out;
    run_child({"/usr/bin/python3", "-c", kPsutil, std::to_string(r)}, &py_out);
    double py_wall = 0, py_cpu = 0;
    std::size_t py_n = 0;
    std::sscanf(py_out.c_str(), "%lf %lf %zu", &py_wall, &py_cpu, &py_n);

    auto cell = [](const Sample& s) {
      return fmt::format("{:.2f} ms ({:.2f} ms CPU)", s.wall_ms, s.cpu_ms);
    };
    std::printf("| %zu | %s | %s | %s | %s | %.1f ms (%.1f ms CPU) | %.1f× | %.0f B/flow |\n", n,
                cell(nl).c_str(), cell(nl_full).c_str(), cell(ns).c_str(), cell(ss).c_str(),
                py_wall, py_cpu, ss.wall_ms / nl.wall_ms, per_flow);
    std::fflush(stdout);
  }
  for (int fd : listeners) ::close(fd);
  helpers.release();
  sh("ip netns del " + ns_a + "; ip netns del " + ns_b);
  return 0;
}
