// SPDX-License-Identifier: Apache-2.0
// Pipe write -> firefly arrival, with the real daemon: latency (median, p99) at a paced rate, the
// drop count, and flowd's peak RSS. Usage:
//   flowd_pipe_bench [--rate LINES_PER_S] [--lines N] [--flowd PATH] [--batch LINES_PER_WRITE]
//                    [--no-firefly] [--raw-udp] [--stalls MS] [--ends LAG]
// --rate 0 writes as fast as the pipe takes it (the throughput run).
// --ends LAG: each start line is followed by the end of the flow started LAG lines before (so the
//   flow journal's end path runs too); latencies are the starts'.
// --no-firefly runs np_api -> prometheus only: the ingest rate, read from flowd_flow_events_total.
// --raw-udp measures, instead of flowd, a plain sendto() loop of firefly-sized datagrams to the
// same
//   kind of receiver: the kernel's loopback ceiling on this machine, for the ratio.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_clock_scrape.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

using flowd::bench::latencies;
using flowd::bench::Latencies;
using flowd::bench::loopback_udp_receiver;
using flowd::bench::now_ns;
using flowd::bench::receive_numbered_fireflies;
using flowd::bench::scrape;

double metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

long peak_rss_kib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  double rate = 10000;
  long lines = 100000;
  int batch = 1;
  double stall_ms = 0;
  long end_lag = -1;
  std::string flowd = FLOWD_BINARY;
  bool firefly = true, raw_udp = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--no-firefly") firefly = false;
    if (a == "--raw-udp") raw_udp = true;
  }
  for (int i = 1; i + 1 < argc; i += 1) {
    std::string a = argv[i];
    if (a == "--rate")
      rate = std::stod(argv[i + 1]);
    else if (a == "--lines")
      lines = std::stol(argv[i + 1]);
    else if (a == "--flowd")
      flowd = argv[i + 1];
    else if (a == "--batch")
      batch = std::stoi(argv[i + 1]);
    else if (a == "--stalls")
      stall_ms = std::stod(argv[i + 1]);
    else if (a == "--ends")
      end_lag = std::stol(argv[i + 1]);
  }

  char tmpl[] = "/tmp/flowd-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  const auto receiver = loopback_udp_receiver(64 << 20);
  const int rx = receiver.fd, udp_port = receiver.port;
  int prom_port = 20000 + (getpid() % 20000);

  if (raw_udp) {
    std::atomic<long> got{0};
    std::thread r([&] {
      char buf[2048];
      while (got.load() < lines) {
        pollfd p{rx, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0) break;
        if (recv(rx, buf, sizeof buf, 0) > 0) got.fetch_add(1);
      }
    });
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(udp_port));
    std::string msg(380, 'x');
    auto t0 = now_ns();
    for (long i = 0; i < lines; ++i)
      sendto(tx, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    auto t1 = now_ns();
    r.join();
    fmt::print("raw-udp lines={} received={} send_rate={:.0f}/s\n", lines, got.load(),
               static_cast<double>(lines) / (static_cast<double>(t1 - t0) / 1e9));
    return 0;
  }

  std::string cfg = fmt::format(
      "[flowd]\nplugins = np_api\nbackends = {3}prometheus\nwork_dir = {0}/cache\nlog_level = "
      "warn\n"
      "[plugin.np_api]\npath = {0}/np\n[backend.udp_firefly]\nport = {1}\n[backend.prometheus]\n"
      "listen = 127.0.0.1:{2}\n",
      dir, udp_port, prom_port, firefly ? "udp_firefly, " : "");
  std::ofstream(dir + "/flowd.cfg") << cfg;
  std::string cfg_path = dir + "/flowd.cfg", log_path = dir + "/log";
  std::vector<char*> args{flowd.data(), const_cast<char*>("-c"), cfg_path.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT, 0644);
  pid_t pid;
  if (posix_spawn(&pid, flowd.c_str(), &fa, nullptr, args.data(), environ) != 0) return 1;
  std::string np = dir + "/np";
  struct stat st {};
  for (int i = 0; i < 500 && stat(np.c_str(), &st) != 0; ++i) usleep(10000);  // startup only
  usleep(200000);

  // The line number travels in the ports: src = i / 65535, dst = i % 65535 + 1 (never 0 or 65536).
  std::vector<std::int64_t> sent(static_cast<std::size_t>(lines)),
      recv_at(static_cast<std::size_t>(lines), 0);
  std::atomic<long> received{0};
  std::thread reader([&] {
    if (!firefly) return;
    receive_numbered_fireflies(rx, lines, recv_at, received);
  });

  int fd = open(np.c_str(), O_WRONLY);
  auto start = now_ns();
  std::string chunk;
  for (long i = 0; i < lines;) {
    if (rate > 0) {
      // Sleep to an absolute deadline: a spinning writer would steal a core from flowd.
      auto due = start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate);
      if (now_ns() < due) {
        timespec ts{static_cast<time_t>(due / 1000000000), static_cast<long>(due % 1000000000)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      }
    }
    chunk.clear();
    long first = i;
    for (int b = 0; b < batch && i < lines; ++b, ++i) {
      chunk += fmt::format("start tcp 127.0.0.1 {} 127.0.0.1 {} 2 9\n", i / 65535, i % 65535 + 1);
      if (end_lag >= 0 && i >= end_lag)
        chunk += fmt::format("end tcp 127.0.0.1 {} 127.0.0.1 {} 2 9\n", (i - end_lag) / 65535,
                             (i - end_lag) % 65535 + 1);
    }
    auto t = now_ns();
    for (long k = first; k < i; ++k) sent[static_cast<std::size_t>(k)] = t;
    if (write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) return 1;
  }
  auto wrote = now_ns();
  reader.join();
  if (!firefly) {
    // Ingest only: wait until flowd counted every line as an event (a scrape is the only signal).
    double events = 0;
    std::int64_t done_at = 0;
    for (int i = 0; i < 3000; ++i) {
      events =
          metric(scrape(prom_port),
                 "flowd_flow_events_total{origin=\"local\",plugin=\"np_api\",state=\"start\"}");
      done_at = now_ns();
      if (events >= static_cast<double>(lines)) break;
      usleep(1000);
    }
    long rss = peak_rss_kib(pid);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    fmt::print(
        "no-firefly rate={} lines={} events={} ingest={:.0f}/s (write {:.3f} s) peak_rss_kib={}\n",
        rate, lines, events, events / (static_cast<double>(done_at - start) / 1e9),
        static_cast<double>(wrote - start) / 1e9, rss);
    return events >= static_cast<double>(lines) ? 0 : 3;
  }
  const Latencies lat = latencies(sent, recv_at);
  const std::int64_t last = lat.last;
  auto q = [&](double p) { return lat.quantile(p); };
  std::string m = scrape(prom_port);
  double dropped = metric(m, "flowd_bus_dropped_events_total{backend=\"udp_firefly\"}");
  double sent_ok = metric(m, "flowd_fireflies_sent_total{destination=\"flow\"}");
  long rss = peak_rss_kib(pid);
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  close(fd);
  double secs = static_cast<double>(last - start) / 1e9;
  fmt::print(
      "rate={} lines={} batch={} received={} dropped={} sent={} write_s={:.3f} throughput={:.0f}/s "
      "median_ms={:.3f} p99_ms={:.3f} max_ms={:.3f} peak_rss_kib={}\n",
      rate, lines, batch, received.load(), dropped, sent_ok,
      static_cast<double>(wrote - start) / 1e9, static_cast<double>(received.load()) / secs, q(0.5),
      q(0.99), lat.max(), rss);
  // --stalls MS: the five worst windows of lines slower than MS, to tell where the p99 comes from.
  if (stall_ms > 0)
    for (const auto& w : flowd::bench::stall_windows(sent, recv_at, stall_ms, 5))
      fmt::print("stall: lines {}..{} ({} lines) at {:.3f} s, worst {:.1f} ms\n", w.first,
                 w.first + w.lines - 1, w.lines, w.at_s, w.worst_ms);
  std::string rm = "rm -rf " + dir;
  return std::system(rm.c_str()) == 0 && received.load() == lines ? 0 : 3;
}
