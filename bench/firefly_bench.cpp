// SPDX-License-Identifier: Apache-2.0
// The firefly listener with the real daemon. Usage:
//   flowd_firefly_bench --ingest [--count N] [--flowd PATH]
//       firefly -> prometheus, flowd pinned to CPU 0 (all its threads): N fireflies are queued in
//       its socket buffer while it is stopped (SIGSTOP), then it drains them (SIGCONT -> the event
//       counter reaching N): fireflies received and turned into events per second on one core.
//       Also prints the rate per CPU-second of flowd (all threads) and of its busiest thread (the
//       listener), read from /proc/PID/task/*/stat, which other load on the machine does not skew.
//       --no-pin leaves flowd on every CPU (the listener thread still runs on one at a time).
//   flowd_firefly_bench --relay [--rate PER_S] [--count N] [--flowd PATH]
//       firefly -> udp_firefly with `collector`: latency from sendto() of a firefly to recv() of
//       its relayed copy (median, p99, max), paced to absolute deadlines.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_clock_scrape.hpp"

extern char** environ;

namespace {

using flowd::bench::loopback_udp_receiver;
using flowd::bench::now_ns;
using flowd::bench::scrape;

// Sum of every sample of `name` (all label sets).
double metric_sum(const std::string& body, const std::string& name) {
  double sum = 0;
  std::size_t pos = 0;
  while ((pos = body.find("\n" + name, pos)) != std::string::npos) {
    pos += 1;
    auto eol = body.find('\n', pos);
    auto line = body.substr(pos, eol - pos);
    auto sp = line.rfind(' ');
    if (line.size() > name.size() && (line[name.size()] == '{' || line[name.size()] == ' '))
      sum += std::stod(line.substr(sp + 1));
  }
  return sum;
}

int free_port(int type) {
  int fd = socket(AF_INET, type, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A Python-flowd firefly whose ports carry its index (src = i / 65535, dst = i % 65535 + 1).
std::string firefly(long i) {
  return fmt::format(
      "<134>1 2026-11-25T18:00:00.000000+00:00 bench flowd - firefly-json - {{\"version\": 1, "
      "\"flow-lifecycle\": "
      "{{\"state\": \"start\", \"current-time\": \"2026-11-25T18:00:00.000000+00:00\", "
      "\"start-time\": "
      "\"2026-11-25T17:59:59.000000+00:00\"}}, \"flow-id\": {{\"afi\": \"ipv4\", \"src-ip\": "
      "\"127.0.0.1\", "
      "\"dst-ip\": \"127.0.0.1\", \"protocol\": \"tcp\", \"src-port\": {}, \"dst-port\": {}}}, "
      "\"context\": "
      "{{\"experiment-id\": 2, \"activity-id\": 9, \"application\": \"flowd v1.1.7\"}}}}",
      i / 65535, i % 65535 + 1);
}

// CPU time (user + system, seconds) of each thread of `pid`, by thread id.
std::map<int, double> thread_cpu(pid_t pid) {
  std::map<int, double> out;
  std::string dir = fmt::format("/proc/{}/task", pid);
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path() / "stat");
    std::string line;
    std::getline(in, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    out[std::stoi(e.path().filename().string())] =
        (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return out;
}

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

}  // namespace

int main(int argc, char** argv) {
  bool ingest = false, relay = false, pin_flowd = true;
  long count = 0, rate = 10000;
  std::string flowd = FLOWD_BINARY;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--ingest")
      ingest = true;
    else if (a == "--relay")
      relay = true;
    else if (a == "--no-pin")
      pin_flowd = false;
    else if (a == "--count" && i + 1 < argc)
      count = std::atol(argv[++i]);
    else if (a == "--rate" && i + 1 < argc)
      rate = std::atol(argv[++i]);
    else if (a == "--flowd" && i + 1 < argc)
      flowd = argv[++i];
    else {
      fmt::print(
          stderr,
          "usage: {} --ingest|--relay [--count N] [--rate PER_S] [--no-pin] [--flowd PATH]\n",
          argv[0]);
      return 2;
    }
  }
  if (ingest == relay) {
    fmt::print(stderr, "choose one of --ingest and --relay\n");
    return 2;
  }
  if (count <= 0) count = ingest ? 150000 : 50000;
  char tmpl[] = "/tmp/flowd-firefly-bench.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  int listen_port = free_port(SOCK_DGRAM), prom_port = free_port(SOCK_STREAM);

  const auto receiver = loopback_udp_receiver(256 << 20);
  const int rx = receiver.fd, rx_port = receiver.port;

  std::string cfg = fmt::format(
      "[flowd]\nplugins = firefly\nbackends = {}prometheus\nwork_dir = {}/cache\nlog_level = warn\n"
      "queue_size = 1000000\n[plugin.firefly]\nhost = 127.0.0.1\nport = {}\nrcvbuf = 268435456\n"
      "[backend.udp_firefly]\ncollector = 127.0.0.1:{}\n[backend.prometheus]\nlisten = "
      "127.0.0.1:{}\n",
      relay ? "udp_firefly, " : "", dir, listen_port, rx_port, prom_port);
  std::ofstream(dir + "/flowd.cfg") << cfg;
  std::string cfg_path = dir + "/flowd.cfg", log_path = dir + "/log";
  std::vector<char*> args{flowd.data(), const_cast<char*>("-c"), cfg_path.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT, 0644);
  if (ingest && pin_flowd) pin(0);  // inherited by flowd: every flowd thread shares CPU 0
  pid_t pid;
  if (posix_spawn(&pid, flowd.c_str(), &fa, nullptr, args.data(), environ) != 0) return 1;
  if (ingest && pin_flowd) pin(1);
  for (int i = 0; i < 500 && scrape(prom_port).empty(); ++i) usleep(10000);  // start-up only

  std::vector<std::string> msgs(static_cast<std::size_t>(count));
  for (long i = 0; i < count; ++i) msgs[static_cast<std::size_t>(i)] = firefly(i);
  int tx = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(listen_port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(tx, reinterpret_cast<sockaddr*>(&to), sizeof to);

  int rc = 0;
  if (ingest) {
    // flowd is stopped while the datagrams queue up in its socket buffer, so that what is measured
    // is flowd alone draining them, not this sender (whose CPU also runs loopback's receive path).
    kill(pid, SIGSTOP);
    for (std::size_t i = 0; i < msgs.size(); i += 64) {
      std::array<mmsghdr, 64> h{};
      std::array<iovec, 64> iov{};
      unsigned n = static_cast<unsigned>(std::min<std::size_t>(64, msgs.size() - i));
      for (unsigned k = 0; k < n; ++k) {
        iov[k] = {msgs[i + k].data(), msgs[i + k].size()};
        h[k].msg_hdr.msg_iov = &iov[k];
        h[k].msg_hdr.msg_iovlen = 1;
      }
      for (unsigned done = 0; done < n;) {
        int s = sendmmsg(tx, h.data() + done, n - done, 0);
        if (s > 0) done += static_cast<unsigned>(s);
      }
    }
    auto cpu_before = thread_cpu(pid);
    auto t0 = now_ns();
    kill(pid, SIGCONT);
    double events = 0, read = 0, last = -1;
    std::int64_t t_done = t0;
    while (true) {
      std::string m = scrape(prom_port);
      events = metric_sum(m, "flowd_flow_events_total");
      read = metric_sum(m, "flowd_firefly_received_total");
      if (events != last) t_done = now_ns();
      if (events >= read && events == last) break;
      last = events;
      usleep(20000);
    }
    double secs = static_cast<double>(t_done - t0) / 1e9;
    // CPU seconds flowd's threads spent meanwhile (including serving the bench's scrapes): a rate
    // per CPU-second does not depend on what else the machine runs.
    auto cpu_after = thread_cpu(pid);
    double total_cpu = 0, busiest = 0;
    for (const auto& [tid, t] : cpu_after) {
      double used = t - (cpu_before.contains(tid) ? cpu_before[tid] : 0.0);
      total_cpu += used;
      busiest = std::max(busiest, used);
    }
    fmt::print(
        "ingest sent={} read_by_listener={} events={} lost_in_socket={} drain_time={:.3f}s "
        "events_per_s={:.0f} flowd_cpu={:.2f}s events_per_cpu_s={:.0f} busiest_thread_cpu={:.2f}s "
        "events_per_busiest_thread_cpu_s={:.0f}\n",
        count, read, events, static_cast<double>(count) - read, secs, events / secs, total_cpu,
        events / total_cpu, busiest, events / busiest);
  } else {
    std::vector<std::int64_t> sent(msgs.size()), got(msgs.size(), 0);
    std::atomic<long> received{0};
    std::thread reader([&] {
      char buf[4096];
      while (received.load() < count) {
        pollfd p{rx, POLLIN, 0};
        if (poll(&p, 1, 3000) <= 0) break;
        ssize_t n = recv(rx, buf, sizeof buf - 1, 0);
        if (n <= 0) continue;
        std::int64_t t = now_ns();
        buf[n] = 0;
        const char* sp = strstr(buf, "\"src-port\": ");
        const char* dp = strstr(buf, "\"dst-port\": ");
        if (!sp || !dp) continue;
        long idx = std::atol(sp + 12) * 65535 + std::atol(dp + 12) - 1;
        if (idx >= 0 && idx < count && got[static_cast<std::size_t>(idx)] == 0) {
          got[static_cast<std::size_t>(idx)] = t;
          received.fetch_add(1);
        }
      }
    });
    std::int64_t start = now_ns() + 1000000, period = 1000000000 / std::max(1L, rate);
    for (std::size_t i = 0; i < msgs.size(); ++i) {
      std::int64_t due = start + static_cast<std::int64_t>(i) * period;
      timespec ts{static_cast<time_t>(due / 1000000000), static_cast<long>(due % 1000000000)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      sent[i] = now_ns();
      send(tx, msgs[i].data(), msgs[i].size(), 0);
    }
    reader.join();
    std::vector<double> lat;
    for (std::size_t i = 0; i < msgs.size(); ++i)
      if (got[i]) lat.push_back(static_cast<double>(got[i] - sent[i]) / 1e6);
    std::sort(lat.begin(), lat.end());
    auto pct = [&](double q) {
      return lat.empty()
                 ? 0.0
                 : lat[std::min(lat.size() - 1,
                                static_cast<std::size_t>(q * static_cast<double>(lat.size())))];
    };
    fmt::print("relay rate={}/s sent={} relayed={} median={:.3f}ms p99={:.3f}ms max={:.3f}ms\n",
               rate, count, lat.size(), pct(0.5), pct(0.99), lat.empty() ? 0.0 : lat.back());
    if (lat.size() != msgs.size()) rc = 1;
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  std::string cleanup = "rm -rf '" + dir + "'";
  if (std::system(cleanup.c_str()) != 0) return 1;
  return rc;
}
