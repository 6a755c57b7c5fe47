// SPDX-License-Identifier: Apache-2.0
// connect() returning -> the kernel plugin's `start` firefly arriving, and -> the flow present in
// the marker's BPF map (issue 15), then the share of short connections that gave a start event,
// with the real daemon; with --hold, flowd's CPU time under connection churn. Run as root:
//   flowd_kernel_latency_bench [--plugin kernel|netlink] [--connections N] [--short N]
//                              [--short-ms MS] [--rate PER_S] [--timeout S] [--flowd PATH]
//                              [--hold N] [--interval S] [--idle S]
// (defaults: kernel, 1000, 1000, 20 ms, 1000/s, 300 s, the flowd built beside it, 0, 2 s, 5 s)
// Two network namespaces joined by a veth pair (fd00:f10e::/64); flowd runs in the first (ip netns
// exec) with the plugin (fixed tag 2/9), udp_firefly (collector: a UDP socket of this bench on
// 127.0.0.1 of that namespace) and the ebpf marker on the veth (map not pinned: the bench finds it
// among flowd's own descriptors in /proc/PID/fdinfo, not by name, as other flowds may run).
// Latency phase (kernel plugin only: the scanner's is its interval): N connections, one at a time,
// each held open until its start firefly came (at most 1 s); the map is looked up at once after
// connect() returns, then every 10 us. The firefly's arrival is the kernel's receive timestamp
// (SO_TIMESTAMPNS), so the bench's own scheduling does not add to it. The kernel's state change
// comes before connect() returns, so a firefly may arrive before the bench's thread runs again:
// such latencies are negative (counted as before_connect_returned).
// Short-flow phase: N connections opened at `rate` per second, each closed `short-ms` after
// connect(); the peer holds its end open until then. Counted: the connections with a start event.
// CPU mode (--hold N > 0; no latency phase, no marker: udp_firefly is the only backend): N
// connections are opened (to ports 5001-5004 of the peer) before flowd starts and held open all
// along by helper processes; once flowd is ready and settled, its CPU time (utime+stime of all its
// threads, /proc/PID/stat) is read over --idle seconds without churn, then over the short-flow
// phase (the churn: --short connections at --rate) plus a fixed 2 s tail for the last events, in
// total and per thread name (/proc/PID/task/TID/stat). The netlink
// scanner runs at --interval. Events are counted from the fireflies to port 5000 (the churn's),
// not per local port: at 10k/s the ephemeral ports are reused (tcp_tw_reuse on in namespace a).
// Every wait is bounded. SIGINT, SIGTERM, SIGHUP and the overall --timeout stop the run; flowd, the
// namespaces and the temporary directory go on every exit path (RAII; a signal thread as a last
// resort if the main thread does not unwind in time). Once flowd is ready the namespaces lose
// their names and flowd gets SIGTERM should the bench die, so that even SIGKILL leaves no
// namespace or process behind (only the directory /tmp/flowd-klat-*).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "flowd_marker.h"

extern char** environ;

namespace {

constexpr std::int64_t kMs = 1000000;

std::int64_t now_ns(clockid_t clock = CLOCK_REALTIME) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void sleep_ns(std::int64_t ns) {
  timespec t{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  nanosleep(&t, nullptr);
}

// Set by the signal thread; every loop of the bench looks at it.
std::atomic<int> g_signal{0};

struct Stopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The run's overall deadline (--timeout) and the signals: check() throws Stopped when either came.
struct Deadline {
  std::int64_t end;
  void check() const {
    if (int s = g_signal.load()) throw Stopped(fmt::format("signal {} ({})", s, strsignal(s)));
    if (now_ns(CLOCK_MONOTONIC) > end) throw Stopped("--timeout reached");
  }
};

// Runs argv with default signal dispositions and an empty mask, waits at most `timeout_ms`
// (then SIGKILL). Returns the exit status, -1 when it could not run or was killed.
int run(const std::vector<std::string>& argv_s, int timeout_ms = 10000) {
  std::vector<char*> argv;
  for (const auto& s : argv_s) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int err = posix_spawn(&pid, argv[0], nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (err != 0) return -1;
  int st = 0;
  for (int waited = 0;; waited += 10) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (r < 0) return -1;
    if (waited >= timeout_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(10000);
  }
}

int sh(const std::string& cmd) {
  return run({"/bin/sh", "-c", cmd});
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Everything the run leaves outside its own memory: flowd, the two namespaces, the temporary
// directory. release() is idempotent and may run on the signal thread as a last resort.
class Resources {
 public:
  std::string ns_a, ns_b, dir;
  std::atomic<pid_t> flowd{-1};

  void release() {
    std::lock_guard lock(mutex_);
    if (released_) return;
    released_ = true;
    if (pid_t pid = flowd.exchange(-1); pid > 0) {
      kill(pid, SIGTERM);
      int st;
      bool gone = false;
      for (int i = 0; i < 500 && !gone; ++i) {  // 5 s for its own cleanup (tc filters)
        gone = waitpid(pid, &st, WNOHANG) == pid;
        if (!gone) usleep(10000);
      }
      if (!gone) {
        fmt::print(stderr, "flowd did not stop within 5 s of SIGTERM: SIGKILL\n");
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
      }
    }
    for (const auto& ns : {ns_a, ns_b})
      if (!ns.empty()) run({"/usr/sbin/ip", "netns", "del", ns});
    if (!dir.empty()) run({"/bin/rm", "-rf", dir});
  }

  // Deletes the namespaces' names once flowd and the bench's sockets are inside: the namespaces
  // then live only as long as those, so even a SIGKILL of the bench leaves none behind (flowd
  // gets SIGTERM when the bench dies).
  void unname() {
    std::lock_guard lock(mutex_);
    for (auto* ns : {&ns_a, &ns_b}) {
      if (!ns->empty()) run({"/usr/sbin/ip", "netns", "del", *ns});
      ns->clear();
    }
  }

 private:
  std::mutex mutex_;
  bool released_ = false;
};

Resources g_res;

struct ReleaseOnExit {
  ~ReleaseOnExit() { g_res.release(); }
};

// Waits for SIGINT/SIGTERM/SIGHUP (blocked in every other thread), tells the main thread, and if
// it has not unwound within 15 s (or the run overran its deadline by 30 s) cleans up and exits.
void signal_thread(std::int64_t hard_end) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  std::int64_t give_up = hard_end;
  for (;;) {
    timespec t{0, 200 * kMs};
    int s = sigtimedwait(&set, nullptr, &t);
    if (s > 0 && g_signal.exchange(s) == 0)
      give_up = std::min(give_up, now_ns(CLOCK_MONOTONIC) + 15000 * kMs);
    if (now_ns(CLOCK_MONOTONIC) > give_up) {
      fmt::print(stderr, "the bench did not unwind in time: cleaning up and exiting\n");
      g_res.release();
      _exit(s > 0 || g_signal ? 128 + g_signal.load() : 124);
    }
  }
}

bool enter(const std::string& ns) {
  int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

struct Percentiles {
  double min = 0, median = 0, p99 = 0, max = 0;
};
Percentiles percentiles(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2],
          v[static_cast<std::size_t>(0.99 * static_cast<double>(v.size() - 1))], v.back()};
}

// The peer in namespace b: accepts, and closes each connection when the client closed it (so a
// connection lives as long as the client wants). Stops within 100 ms of `stop`.
class Acceptor {
 public:
  explicit Acceptor(int listener) : listener_(listener), thread_([this] { loop(); }) {}
  ~Acceptor() {
    stop_ = true;
    thread_.join();
  }

 private:
  void loop() {
    std::vector<pollfd> fds{{listener_, POLLIN, 0}};
    char buf[512];
    while (!stop_) {
      if (poll(fds.data(), fds.size(), 100) <= 0) continue;
      for (std::size_t i = fds.size(); i-- > 1;)
        if (fds[i].revents != 0) {
          ssize_t n = recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN)) {  // the client closed (or reset) it
            close(fds[i].fd);
            fds.erase(fds.begin() + static_cast<std::ptrdiff_t>(i));
          }
        }
      if (fds[0].revents & POLLIN)
        for (int c; (c = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;)
          fds.push_back({c, POLLIN, 0});
    }
    for (std::size_t i = 1; i < fds.size(); ++i) close(fds[i].fd);
  }

  int listener_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Firefly {
  std::string state;
  int src_port = 0, dst_port = 0, experiment = 0, activity = 0;
  std::int64_t rx_ns = 0;  // the kernel's receive time, CLOCK_REALTIME
};

// The collector: timestamps (SO_TIMESTAMPNS) and parses every firefly flowd sends.
class Collector {
 public:
  explicit Collector(int fd) : fd_(fd), thread_([this] { loop(); }) {}
  ~Collector() {
    stop_ = true;
    thread_.join();
  }

  // The start firefly of the connection from local `port`, waiting at most `timeout_ns`.
  std::optional<Firefly> wait_start(int port, std::int64_t timeout_ns) {
    std::unique_lock lock(mutex_);
    std::optional<Firefly> found;
    cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns), [&] {
      if (auto it = starts_.find(port); it != starts_.end()) found = it->second;
      return found.has_value() || g_signal.load() != 0;
    });
    return found;
  }
  std::map<int, Firefly> starts() {
    std::lock_guard lock(mutex_);
    return starts_;
  }
  std::map<int, int> ends() {
    std::lock_guard lock(mutex_);
    return ends_;
  }
  long unparsed() const { return unparsed_; }
  // Fireflies of connections to `churn_port` (any local port), since the start.
  long churn_starts() const { return churn_starts_; }
  long churn_ends() const { return churn_ends_; }
  void set_churn_port(int port) { churn_port_ = port; }
  void clear() {
    std::lock_guard lock(mutex_);
    starts_.clear();
    ends_.clear();
  }

 private:
  void loop() {
    char buf[8192], control[256];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) != 1) continue;
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (n <= 0) continue;
      Firefly f;
      f.rx_ns = now_ns();
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts;
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          f.rx_ns = static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        }
      std::string_view d(buf, static_cast<std::size_t>(n));
      auto brace = d.find('{');
      auto j = brace == std::string_view::npos
                   ? nlohmann::json()
                   : nlohmann::json::parse(d.substr(brace), nullptr, false);
      if (!j.is_object()) {
        ++unparsed_;
        continue;
      }
      try {
        f.state = j.at("flow-lifecycle").at("state").get<std::string>();
        f.src_port = j.at("flow-id").at("src-port").get<int>();
        f.dst_port = j.at("flow-id").at("dst-port").get<int>();
        f.experiment = j.at("context").at("experiment-id").get<int>();
        f.activity = j.at("context").at("activity-id").get<int>();
      } catch (const nlohmann::json::exception&) {
        ++unparsed_;
        continue;
      }
      if (f.dst_port == churn_port_) ++(f.state == "start" ? churn_starts_ : churn_ends_);
      std::lock_guard lock(mutex_);
      if (f.state == "start") starts_.emplace(f.src_port, f);
      if (f.state == "end") ++ends_[f.src_port];
      cv_.notify_all();
    }
  }

  int fd_;
  std::atomic<bool> stop_{false};
  std::atomic<long> unparsed_{0};
  std::atomic<long> churn_starts_{0}, churn_ends_{0};
  std::atomic<int> churn_port_{-1};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int, Firefly> starts_;
  std::map<int, int> ends_;
  std::thread thread_;
};

// flowd's flow map: among the BPF maps flowd holds open (/proc/PID/fdinfo: map_id), the one
// named like the marker's whose key is a flowd_flow_key.
int find_flow_map(pid_t pid) {
  const std::string fdinfo = fmt::format("/proc/{}/fdinfo", pid);
  DIR* d = opendir(fdinfo.c_str());
  if (!d) return -1;
  int found = -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string text = slurp(fdinfo + "/" + e->d_name);
    auto at = text.find("map_id:");
    if (at == std::string::npos) continue;
    int fd = bpf_map_get_fd_by_id(static_cast<__u32>(std::atoi(text.c_str() + at + 7)));
    if (fd < 0) continue;
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 &&
        std::strcmp(info.name, "flowd_flow_labe") == 0 && info.key_size == sizeof(flowd_flow_key) &&
        info.max_entries > 1) {
      found = fd;
      break;
    }
    close(fd);
  }
  closedir(d);
  return found;
}

// Connects (blocking, at most `timeout_s`: a lost SYN is sent again after 1 s) from the current
// namespace; returns the socket and its port.
int tcp_connect(const sockaddr_in6& to, int& port, int timeout_s = 3) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    close(fd);
    fail("connect");
  }
  sockaddr_in6 me{};
  socklen_t ml = sizeof me;
  getsockname(fd, reinterpret_cast<sockaddr*>(&me), &ml);
  port = ntohs(me.sin6_port);
  return fd;
}

// CPU time (user + system, all threads) of process `pid` so far, in seconds; -1 when unreadable.
double stat_cpu_s(const std::string& path) {
  const std::string stat = slurp(path);
  auto paren = stat.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return -1;
  std::vector<std::string> f;
  for (std::size_t i = paren + 2, j; i < stat.size(); i = j + 1) {
    j = stat.find(' ', i);
    if (j == std::string::npos) j = stat.size();
    f.push_back(stat.substr(i, j - i));
  }
  if (f.size() < 13) return -1;  // fields 14 and 15 (utime, stime) are f[11], f[12]
  return static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) /
         static_cast<double>(sysconf(_SC_CLK_TCK));
}

double process_cpu_s(pid_t pid) {
  return stat_cpu_s(fmt::format("/proc/{}/stat", pid));
}

// CPU seconds so far per thread name (/proc/PID/task/TID/{comm,stat}), threads of one name summed.
std::map<std::string, double> thread_cpu_s(pid_t pid) {
  std::map<std::string, double> out;
  const std::string task = fmt::format("/proc/{}/task", pid);
  DIR* d = opendir(task.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string comm = slurp(task + "/" + e->d_name + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    const double s = stat_cpu_s(task + "/" + e->d_name + "/stat");  // the thread's own
    if (s >= 0) out[comm] += s;
  }
  closedir(d);
  return out;
}

double self_cpu_s() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

std::string load_average() {
  std::string l = slurp("/proc/loadavg");
  auto parts = l.find(' ', l.find(' ', l.find(' ') + 1) + 1);
  return l.substr(0, parts);
}

// The --hold connections: RLIMIT_NOFILE cannot be raised here (no CAP_SYS_RESOURCE), so helper
// processes hold them, each as many as its own limit allows (both ends), until SIGKILL (from the
// destructor, or PR_SET_PDEATHSIG when the bench dies).
struct Held {
  std::vector<pid_t> helpers;
  ~Held() {
    for (pid_t p : helpers) kill(p, SIGKILL);
    for (pid_t p : helpers) waitpid(p, nullptr, 0);
  }
};

struct Options {
  std::string plugin = "kernel";
  long connections = 1000, short_n = 1000, short_ms = 20, rate = 1000, timeout_s = 300;
  long hold = 0, interval_s = 2, idle_s = 5;
  std::string flowd = FLOWD_BINARY;
};

int bench(const Options& o) {
  const Deadline deadline{now_ns(CLOCK_MONOTONIC) + o.timeout_s * 1000 * kMs};
  ReleaseOnExit release;
  g_res.ns_a = fmt::format("flowdkla{}", getpid());
  g_res.ns_b = fmt::format("flowdklb{}", getpid());
  if (run({"/usr/sbin/ip", "netns", "add", g_res.ns_a}) != 0 ||
      run({"/usr/sbin/ip", "netns", "add", g_res.ns_b}) != 0 ||
      sh(fmt::format(
          // No duplicate address detection: while the link-local address is tentative, the first
          // packets wait (the first SYN went unanswered for 1 s).
          "for n in {0} {1}; do ip netns exec $n sysctl -qw net.ipv6.conf.all.accept_dad=0 "
          "net.ipv6.conf.default.accept_dad=0 || exit 1; done && ip -n {0} link add kl0 type veth "
          "peer name kl1 netns {1} && ip -n {0} addr add "
          "fd00:f10e::1/64 dev kl0 nodad && ip -n {1} addr add fd00:f10e::2/64 dev kl1 nodad && "
          "ip -n {0} link set kl0 up && ip -n {1} link set kl1 up && ip -n {0} link set lo up && "
          // The churn reuses ports (TIME-WAIT on the client) and --hold needs many of them.
          "ip netns exec {0} sysctl -qw net.ipv4.tcp_tw_reuse=1 "
          "net.ipv4.ip_local_port_range='1024 65000'",
          g_res.ns_a, g_res.ns_b)) != 0)
    throw std::runtime_error("setting up the namespaces failed");
  char tmpl[] = "/tmp/flowd-klat-XXXXXX";
  if (!mkdtemp(tmpl)) fail("mkdtemp");
  g_res.dir = tmpl;
  const std::string& dir = g_res.dir;

  // The peer's listener in namespace b; everything else of the bench in namespace a.
  if (!enter(g_res.ns_b)) fail("setns " + g_res.ns_b);
  Fd listener(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(5000);
  inet_pton(AF_INET6, "fd00:f10e::2", &sa.sin6_addr);
  if (bind(listener.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      listen(listener.fd, 4096) != 0)
    fail("listener");
  std::vector<std::unique_ptr<Fd>> hold_listeners;
  for (int i = 1; o.hold > 0 && i <= 4; ++i) {
    auto l = std::make_unique<Fd>(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in6 ha = sa;
    ha.sin6_port = htons(static_cast<std::uint16_t>(5000 + i));
    if (bind(l->fd, reinterpret_cast<sockaddr*>(&ha), sizeof ha) != 0 || listen(l->fd, 4096) != 0)
      fail("hold listener");
    hold_listeners.push_back(std::move(l));
  }
  if (!enter(g_res.ns_a)) fail("setns " + g_res.ns_a);
  Fd rx(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in ra{};
  ra.sin_family = AF_INET;
  ra.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t rl = sizeof ra;
  int on = 1, rcvbuf = 16 << 20;
  setsockopt(rx.fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  setsockopt(rx.fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  if (bind(rx.fd, reinterpret_cast<sockaddr*>(&ra), sizeof ra) != 0 ||
      getsockname(rx.fd, reinterpret_cast<sockaddr*>(&ra), &rl) != 0)
    fail("collector socket");
  Fd notify(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  const std::string notify_path = dir + "/notify";
  std::snprintf(un.sun_path, sizeof un.sun_path, "%s", notify_path.c_str());
  if (bind(notify.fd, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0) fail("notify socket");

  // The path works before flowd starts (neighbour discovery done): one connection, 10 s at most.
  {
    Acceptor warm(listener.fd);
    int port = 0;
    close(tcp_connect(sa, port, 10));
  }
  // The held connections, in batches of 1000 per listener (connect, then accept, each at most
  // 1 s), in helpers of at most (RLIMIT_NOFILE - 100) / 2 connections each.
  Held held;
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  const long per_helper =
      std::max(1000L, static_cast<long>(nofile.rlim_cur - 100) / 2 / 1000 * 1000);
  for (long done = 0; done < o.hold;) {
    deadline.check();
    const long k = std::min(per_helper, o.hold - done);
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) fail("pipe");
    const pid_t parent_pid = getpid();
    pid_t h = fork();
    if (h < 0) fail("fork");
    if (h == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent_pid) _exit(1);
      char ok = 1;
      try {
        for (long b = done; b < done + k; b += 1000) {
          const auto& l = hold_listeners[static_cast<std::size_t>(b / 1000) % 4];
          sockaddr_in6 ha = sa;
          ha.sin6_port = htons(static_cast<std::uint16_t>(5001 + (b / 1000) % 4));
          const long batch = std::min(1000L, done + k - b);
          for (long i = 0; i < batch; ++i) {
            int port = 0;
            tcp_connect(ha, port);  // held until the helper dies
          }
          for (long i = 0; i < batch;) {
            if (accept4(l->fd, nullptr, nullptr, SOCK_CLOEXEC) >= 0) {
              ++i;
              continue;
            }
            pollfd p{l->fd, POLLIN, 0};
            if (errno != EAGAIN || poll(&p, 1, 1000) != 1) fail("accept");
          }
        }
      } catch (const std::exception&) {
        ok = 0;
      }
      [[maybe_unused]] auto w = write(ready[1], &ok, 1);
      for (;;) pause();
    }
    held.helpers.push_back(h);
    close(ready[1]);
    char ok = 0;
    pollfd p{ready[0], POLLIN, 0};
    const bool got = poll(&p, 1, 60000) == 1 && read(ready[0], &ok, 1) == 1 && ok == 1;
    close(ready[0]);
    if (!got) throw std::runtime_error(fmt::format("a helper could not open {} connections", k));
    done += k;
  }
  if (o.hold > 0) fmt::print("holding {} connections\n", o.hold);

  const bool kernel = o.plugin == "kernel", cpu_mode = o.hold > 0;
  std::ofstream(dir + "/flowd.cfg") << fmt::format(
      "[flowd]\nplugins = {2}\nbackends = udp_firefly{3}\nwork_dir = {0}/cache\n"
      "[plugin.{2}]\nexperiment = 2\nactivity = 9\nignore_private = no\n"
      "internal_networks = 127.0.0.0/8\n{4}[backend.udp_firefly]\nport = {1}\ncollector = "
      "127.0.0.1\n{5}",
      dir, ntohs(ra.sin_port), o.plugin, cpu_mode ? "" : ", ebpf",
      kernel ? "" : fmt::format("interval = {}s\n", o.interval_s),
      cpu_mode ? "" : "[backend.ebpf]\ninterfaces = kl0\npin_path =\n");
  const std::string cfg = dir + "/flowd.cfg", log = dir + "/log";

  // flowd: through `ip netns exec` (which execs it: the pid is flowd's; /sys is the namespace's),
  // SIGTERM should the bench die, signals unblocked, stderr to the log, NOTIFY_SOCKET for READY.
  std::vector<std::string> args_s{"/usr/sbin/ip", "netns", "exec", g_res.ns_a, o.flowd, "-c", cfg};
  std::vector<char*> args;
  for (auto& s : args_s) args.push_back(s.data());
  args.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) env_s.emplace_back(*e);
  env_s.push_back("NOTIFY_SOCKET=" + notify_path);
  std::vector<char*> env;
  for (auto& s : env_s) env.push_back(s.data());
  env.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    int lfd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (lfd >= 0) dup2(lfd, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(args[0], args.data(), env.data());
    _exit(127);
  }
  g_res.flowd = pid;
  auto alive = [&] {
    int st;
    if (waitpid(pid, &st, WNOHANG) == 0) return true;
    g_res.flowd = -1;  // reaped: its pid is not ours to signal any more
    return false;
  };

  // Ready: READY=1, then the plugin's own line (its adoption dump is done), at most 30 s.
  const std::string ready_line =
      kernel ? "following TCP state changes" : "scanning TCP connections";
  const std::int64_t ready_by = now_ns(CLOCK_MONOTONIC) + 30000 * kMs;
  bool ready = false;
  while (!ready) {
    deadline.check();
    if (!alive()) {
      throw std::runtime_error("flowd exited during startup; log:\n" + slurp(log));
    }
    if (now_ns(CLOCK_MONOTONIC) > ready_by)
      throw std::runtime_error("flowd not ready within 30 s; log:\n" + slurp(log));
    pollfd p{notify.fd, POLLIN, 0};
    if (poll(&p, 1, 50) == 1) {
      char m[512];
      ssize_t n = recv(notify.fd, m, sizeof m - 1, MSG_DONTWAIT);
      if (n > 0 && std::string_view(m, static_cast<std::size_t>(n)).find("READY=1") !=
                       std::string_view::npos)
        ready = true;
    }
  }
  while (slurp(log).find(ready_line) == std::string::npos) {
    deadline.check();
    if (now_ns(CLOCK_MONOTONIC) > ready_by)
      throw std::runtime_error("flowd never logged '" + ready_line + "'; log:\n" + slurp(log));
    usleep(10000);
  }
  if (kernel && slurp(log).find("cannot follow TCP state changes") != std::string::npos)
    throw std::runtime_error("the kernel plugin fell back to polling; log:\n" + slurp(log));
  const bool first_packet = slurp(log).find("marking from the first packet") != std::string::npos;
  Fd map(cpu_mode ? -1 : find_flow_map(pid));
  if (!cpu_mode && map.fd < 0)
    throw std::runtime_error("flowd's flow map not found; log:\n" + slurp(log));

  g_res.unname();
  Acceptor acceptor(listener.fd);
  Collector collector(rx.fd);
  fmt::print("plugin={} first_packet_marking={} nproc={} flowd_pid={}\n", o.plugin,
             first_packet ? "yes" : "no", std::thread::hardware_concurrency(), pid);
  std::fflush(stdout);

  // CPU mode: flowd settles (3 s and two scan intervals), then its CPU over --idle s, no churn.
  double idle_cpu_per_s = 0;
  if (cpu_mode) {
    collector.set_churn_port(5000);
    for (std::int64_t until = now_ns(CLOCK_MONOTONIC) + (3 + 2 * o.interval_s) * 1000 * kMs;
         now_ns(CLOCK_MONOTONIC) < until;) {
      deadline.check();
      sleep_ns(100 * kMs);
    }
    const double c0 = process_cpu_s(pid);
    const std::int64_t t0 = now_ns(CLOCK_MONOTONIC);
    for (std::int64_t until = t0 + o.idle_s * 1000 * kMs; now_ns(CLOCK_MONOTONIC) < until;) {
      deadline.check();
      sleep_ns(100 * kMs);
    }
    const double secs = static_cast<double>(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    idle_cpu_per_s = (process_cpu_s(pid) - c0) / secs;
    fmt::print("idle: held={} flowd_cpu_s={:.3f} over {:.2f} s ({:.4f} CPU-s/s) loadavg={}\n",
               o.hold, process_cpu_s(pid) - c0, secs, idle_cpu_per_s, load_average());
    std::fflush(stdout);
  }

  // Latency phase: one connection at a time.
  if (kernel && o.connections > 0 && !cpu_mode) {
    std::vector<double> to_map, to_event;
    long present_at_return = 0, no_map = 0, no_event = 0, wrong_tag = 0;
    for (long i = 0; i < o.connections; ++i) {
      deadline.check();
      int port = 0;
      Fd fd(tcp_connect(sa, port));
      const std::int64_t t0 = now_ns();
      flowd_flow_key key;
      std::memset(&key, 0, sizeof key);
      std::memcpy(key.daddr, &sa.sin6_addr, 16);
      key.sport = htons(static_cast<std::uint16_t>(port));
      key.dport = sa.sin6_port;
      key.proto = IPPROTO_TCP;
      __u32 value = 0;
      if (bpf_map_lookup_elem(map.fd, &key, &value) == 0) {
        ++present_at_return;
        to_map.push_back(0);
      } else {
        // Sleep 10 us between lookups: a spinning reader would take a core from flowd's threads.
        bool found = false;
        std::int64_t t1 = t0;
        while (!found && t1 - t0 < 1000 * kMs && !g_signal) {
          sleep_ns(10000);
          found = bpf_map_lookup_elem(map.fd, &key, &value) == 0;
          t1 = now_ns();
        }
        if (found)
          to_map.push_back(static_cast<double>(t1 - t0) / 1e6);
        else
          ++no_map;
      }
      if (auto f = collector.wait_start(port, 1000 * kMs)) {
        to_event.push_back(static_cast<double>(f->rx_ns - t0) / 1e6);
        wrong_tag += f->experiment != 2 || f->activity != 9;
      } else {
        ++no_event;
      }
      close(fd.fd);
      fd.fd = -1;
      sleep_ns(kMs);  // paced: at most one connection a millisecond
    }
    auto m = percentiles(to_map), e = percentiles(to_event);
    fmt::print(
        "latency: connections={} map_entry_present_when_connect_returned={} "
        "connect->map median_ms={:.3f} p99_ms={:.3f} max_ms={:.3f} never_in_map={}; "
        "connect->start_firefly min_ms={:.3f} median_ms={:.3f} p99_ms={:.3f} max_ms={:.3f} "
        "before_connect_returned={} missing={} wrong_tag={}\n",
        o.connections, present_at_return, m.median, m.p99, m.max, no_map, e.min, e.median, e.p99,
        e.max, std::count_if(to_event.begin(), to_event.end(), [](double v) { return v < 0; }),
        no_event, wrong_tag);
    std::fflush(stdout);
    // The ends of the last connections, then a clean slate for the next phase.
    sleep_ns(500 * kMs);
    collector.clear();
  }

  // Short flows: opened at `rate`, each closed `short_ms` after connect() returned.
  if (o.short_n > 0) {
    if (!kernel && !cpu_mode) {
      // The scanner scanned when it logged ready and scans every 2 s from then: starting at once
      // would put a 1.1 s phase between two scans every time. A random offset in [0, 2 s) makes
      // the share an unbiased one (more connections, --short, make it a steadier one).
      std::random_device rd;
      const std::int64_t offset = std::uniform_int_distribution<std::int64_t>(0, 1999)(rd) * kMs;
      for (std::int64_t until = now_ns(CLOCK_MONOTONIC) + offset;
           now_ns(CLOCK_MONOTONIC) < until;) {
        deadline.check();
        sleep_ns(std::min<std::int64_t>(until - now_ns(CLOCK_MONOTONIC), 100 * kMs));
      }
    }
    struct Open {
      int fd, port;
      std::int64_t close_at;
    };
    std::deque<Open> open;
    std::vector<int> ports;
    struct CloseAll {
      std::deque<Open>& q;
      ~CloseAll() {
        for (auto& c : q) close(c.fd);
      }
    } close_all{open};
    const double cpu0 = process_cpu_s(pid), self0 = self_cpu_s();
    const auto threads0 = cpu_mode ? thread_cpu_s(pid) : std::map<std::string, double>{};
    const std::int64_t step = 1000000000 / std::max(o.rate, 1L), start = now_ns(CLOCK_MONOTONIC);
    std::int64_t late = 0;
    for (long i = 0; i < o.short_n || !open.empty();) {
      deadline.check();
      const std::int64_t now = now_ns(CLOCK_MONOTONIC);
      while (!open.empty() && open.front().close_at <= now) {
        close(open.front().fd);
        open.pop_front();
      }
      const std::int64_t next_open = i < o.short_n ? start + i * step : INT64_MAX;
      if (now >= next_open) {
        int port = 0;
        int fd = tcp_connect(sa, port);
        const std::int64_t t = now_ns(CLOCK_MONOTONIC);
        late = std::max(late, t - next_open);
        open.push_back({fd, port, t + o.short_ms * kMs});
        if (!cpu_mode) ports.push_back(port);
        ++i;
        continue;
      }
      const std::int64_t wake =
          std::min(next_open, open.empty() ? next_open : open.front().close_at);
      if (wake > now) sleep_ns(std::min<std::int64_t>(wake - now, 100 * kMs));
    }
    const double took = static_cast<double>(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
    if (cpu_mode) {
      // A fixed 2 s tail for both plugins (the scanner's last scan at 1 s finds the last ends).
      const std::int64_t tail_end = now_ns(CLOCK_MONOTONIC) + 2000 * kMs;
      while (now_ns(CLOCK_MONOTONIC) < tail_end) {
        deadline.check();
        sleep_ns(100 * kMs);
      }
      const double window = static_cast<double>(now_ns(CLOCK_MONOTONIC) - start) / 1e9;
      const double cpu = process_cpu_s(pid) - cpu0, self = self_cpu_s() - self0;
      std::string per_thread;
      for (const auto& [name, secs] : thread_cpu_s(pid)) {
        auto before = threads0.find(name);
        const double d = secs - (before == threads0.end() ? 0 : before->second);
        if (d > 0) per_thread += fmt::format(" {}={:.2f}", name, d);
      }
      const double extra = cpu - idle_cpu_per_s * window;
      const long starts = collector.churn_starts(), ends = collector.churn_ends();
      const auto n = static_cast<double>(o.short_n);
      fmt::print(
          "churn: held={} connections={} of {} ms at {}/s (took {:.2f} s: {:.0f}/s, worst open "
          "late by {:.1f} ms) window={:.2f} s flowd_cpu_s={:.3f} ({:.4f} CPU-s/s; {:.3f} above "
          "idle) per_churned_connection_us={:.2f} (above idle {:.2f}) start_events={} ({:.1f} %) "
          "end_events={} ({:.1f} %) per_event_seen_us={:.2f} bench_cpu_s={:.2f} loadavg={}\n",
          o.hold, o.short_n, o.short_ms, o.rate, took, n / took, static_cast<double>(late) / 1e6,
          window, cpu, cpu / window, extra, cpu / n * 1e6, extra / n * 1e6, starts,
          100.0 * static_cast<double>(starts) / n, ends, 100.0 * static_cast<double>(ends) / n,
          starts + ends > 0 ? cpu / static_cast<double>(starts + ends) * 1e6 : 0.0, self,
          load_average());
      fmt::print("churn: flowd CPU-s per thread:{}\n", per_thread);
      std::fflush(stdout);
    }
    // The plugin's last events: the kernel's at once, the scanner's at its next scan (2 s).
    const std::int64_t settle = now_ns(CLOCK_MONOTONIC) + (kernel ? 2000 : 3000) * kMs;
    long started = 0, ended = 0;
    for (; !cpu_mode;) {
      deadline.check();
      auto s = collector.starts();
      auto e = collector.ends();
      started = ended = 0;
      for (int p : ports) {
        started += s.count(p) != 0;
        ended += e.count(p) != 0;
      }
      if ((started == o.short_n && ended == o.short_n) || now_ns(CLOCK_MONOTONIC) > settle) break;
      sleep_ns(50 * kMs);
    }
    if (!cpu_mode)
      fmt::print(
          "short flows: connections={} of {} ms opened at {}/s (took {:.2f} s, worst open late by "
          "{:.1f} ms) with_start={} ({:.1f} %) with_end={} ({:.1f} %)\n",
          o.short_n, o.short_ms, o.rate, took, static_cast<double>(late) / 1e6, started,
          100.0 * static_cast<double>(started) / static_cast<double>(o.short_n), ended,
          100.0 * static_cast<double>(ended) / static_cast<double>(o.short_n));
    std::fflush(stdout);
  }
  if (collector.unparsed() > 0)
    fmt::print("datagrams that were not fireflies: {}\n", collector.unparsed());
  if (!alive()) throw std::runtime_error("flowd exited during the run; log:\n" + slurp(log));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      fmt::print(stderr, "{}: missing value\n", a);
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--plugin")
      o.plugin = v;
    else if (a == "--connections")
      o.connections = std::stol(v);
    else if (a == "--short")
      o.short_n = std::stol(v);
    else if (a == "--short-ms")
      o.short_ms = std::stol(v);
    else if (a == "--rate")
      o.rate = std::stol(v);
    else if (a == "--timeout")
      o.timeout_s = std::stol(v);
    else if (a == "--hold")
      o.hold = std::stol(v);
    else if (a == "--interval")
      o.interval_s = std::stol(v);
    else if (a == "--idle")
      o.idle_s = std::stol(v);
    else if (a == "--flowd")
      o.flowd = v;
    else {
      fmt::print(stderr, "unknown option {}\n", a);
      return 2;
    }
  }
  if (o.plugin != "kernel" && o.plugin != "netlink") {
    fmt::print(stderr, "--plugin: kernel or netlink\n");
    return 2;
  }
  {
    rlimit r{};  // the soft limit up to the hard one (the helpers of --hold inherit it)
    getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
  if (geteuid() != 0) {
    fmt::print(stderr, "needs root (network namespaces, BPF)\n");
    return 1;
  }
  // Signals go to the signal thread only: blocked here before any thread exists.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread(signal_thread, now_ns(CLOCK_MONOTONIC) + (o.timeout_s + 30) * 1000 * kMs).detach();
  try {
    return bench(o);
  } catch (const Stopped& e) {
    fmt::print(stderr, "stopped: {}; cleaned up\n", e.what());
    return g_signal ? 128 + g_signal.load() : 124;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
