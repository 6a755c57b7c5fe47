// SPDX-License-Identifier: Apache-2.0
// POST /v1/flows -> firefly arrival, with the real daemon (np_api beside the api plugin, so the
// pipe's figures in docs/benchmarks.md compare): flows per second and latency (median, p99).
// Usage:
//   flowd_api_bench [--rate FLOWS_PER_S] [--flows N] [--clients C] [--batch FLOWS_PER_POST]
//                   [--tcp] [--flowd PATH]
// Each client is one thread with one keep-alive connection (libcurl), posting synchronously; --rate
// paces the sum of the clients (0: as fast as the answers come). Latency: CLOCK_MONOTONIC before
// the POST -> when the firefly's recv() returns. --tcp posts to 127.0.0.1 instead of the unix
// socket.
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
#include <string>
#include <thread>
#include <vector>

#include "bench_clock_scrape.hpp"

extern char** environ;

namespace {

using flowd::bench::latencies;
using flowd::bench::Latencies;
using flowd::bench::loopback_udp_receiver;
using flowd::bench::now_ns;
using flowd::bench::receive_numbered_fireflies;
using flowd::bench::scrape;

double metric(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

long peak_rss_kib(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

std::size_t discard(char*, std::size_t s, std::size_t n, void*) {
  return s * n;
}

std::string flow(long i) {
  // The flow's number travels in the ports, as in flowd_pipe_bench.
  return fmt::format(
      R"({{"state":"start","protocol":"tcp","src_ip":"127.0.0.1","src_port":{},"dst_ip":"127.0.0.1","dst_port":{},"scitag":137}})",
      i / 65535, i % 65535 + 1);
}

}  // namespace

int main(int argc, char** argv) {
  double rate = 1000;
  long flows = 5000;
  int clients = 1, batch = 1;
  bool tcp = false;
  std::string flowd = FLOWD_BINARY;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--tcp") tcp = true;
  for (int i = 1; i + 1 < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rate") rate = std::stod(argv[i + 1]);
    if (a == "--flows") flows = std::stol(argv[i + 1]);
    if (a == "--clients") clients = std::max(1, std::stoi(argv[i + 1]));
    if (a == "--batch") batch = std::max(1, std::stoi(argv[i + 1]));
    if (a == "--flowd") flowd = argv[i + 1];
  }
  curl_global_init(CURL_GLOBAL_ALL);
  char tmpl[] = "/tmp/flowd-api-bench-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  const auto receiver = loopback_udp_receiver(64 << 20);
  const int rx = receiver.fd, udp_port = receiver.port;
  const int prom_port = 20000 + (getpid() % 20000);
  const int api_port = prom_port + 1;
  const std::string sock = dir + "/api.sock";

  std::string cfg = fmt::format(
      "[flowd]\nplugins = np_api, api\nbackends = udp_firefly, prometheus\nwork_dir = {0}/cache\n"
      "log_level = warn\n[plugin.np_api]\npath = {0}/np\n[plugin.api]\nsocket = {3}\nlisten = "
      "127.0.0.1:{4}\nthreads = {5}\nmax_flows = {6}\n[backend.udp_firefly]\nport = {1}\n"
      "[backend.prometheus]\nlisten = 127.0.0.1:{2}\n",
      dir, udp_port, prom_port, sock, api_port, std::max(8, clients), std::max(1000, batch));
  std::ofstream(dir + "/flowd.cfg") << cfg;
  std::string cfg_path = dir + "/flowd.cfg", log_path = dir + "/log";
  std::vector<char*> args{flowd.data(), const_cast<char*>("-c"), cfg_path.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT, 0644);
  pid_t pid;
  if (posix_spawn(&pid, flowd.c_str(), &fa, nullptr, args.data(), environ) != 0) return 1;
  struct stat st {};
  for (int i = 0; i < 500 && stat(sock.c_str(), &st) != 0; ++i) usleep(10000);  // startup only
  usleep(200000);

  std::vector<std::int64_t> sent(static_cast<std::size_t>(flows)),
      recv_at(static_cast<std::size_t>(flows), 0);
  std::atomic<long> received{0};
  std::thread reader([&] { receive_numbered_fireflies(rx, flows, recv_at, received); });

  // Requests are numbered globally; client c takes every clients-th one.
  const long requests = (flows + batch - 1) / batch;
  std::atomic<long> failed{0};
  const auto start = now_ns();
  std::vector<std::thread> posters;
  for (int c = 0; c < clients; ++c)
    posters.emplace_back([&, c] {
      CURL* h = curl_easy_init();
      std::string url = tcp ? fmt::format("http://127.0.0.1:{}/v1/flows", api_port)
                            : std::string("http://flowd/v1/flows");
      curl_easy_setopt(h, CURLOPT_URL, url.c_str());
      if (!tcp) curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock.c_str());
      curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
      curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
      curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
      std::string body;
      for (long r = c; r < requests; r += clients) {
        if (rate > 0) {
          auto due = start + static_cast<std::int64_t>(static_cast<double>(r * batch) * 1e9 / rate);
          if (now_ns() < due) {
            timespec ts{static_cast<time_t>(due / 1000000000), static_cast<long>(due % 1000000000)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
          }
        }
        long first = r * batch, last = std::min(flows, first + batch);
        body = "[";
        for (long i = first; i < last; ++i) body += (i > first ? "," : "") + flow(i);
        body += "]";
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        auto t = now_ns();
        for (long i = first; i < last; ++i) sent[static_cast<std::size_t>(i)] = t;
        long status = 0;
        if (curl_easy_perform(h) != CURLE_OK ||
            (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status), status != 200))
          failed.fetch_add(1);
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(h);
    });
  for (auto& t : posters) t.join();
  const auto posted = now_ns();
  reader.join();

  const Latencies lat = latencies(sent, recv_at);
  const std::int64_t last = lat.last;
  auto q = [&](double p) { return lat.quantile(p); };
  std::string m = scrape(prom_port);
  double dropped = metric(m, "flowd_bus_dropped_events_total{backend=\"udp_firefly\"}");
  long rss = peak_rss_kib(pid);
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  double secs = static_cast<double>(last - start) / 1e9;
  fmt::print(
      "{} rate={} flows={} clients={} batch={} received={} failed_posts={} dropped={} "
      "post_s={:.3f} throughput={:.0f}/s median_ms={:.3f} p99_ms={:.3f} max_ms={:.3f} "
      "peak_rss_kib={}\n",
      tcp ? "tcp" : "unix", rate, flows, clients, batch, received.load(), failed.load(), dropped,
      static_cast<double>(posted - start) / 1e9, static_cast<double>(received.load()) / secs,
      q(0.5), q(0.99), lat.max(), rss);
  std::string rm = "rm -rf " + dir;
  return std::system(rm.c_str()) == 0 && received.load() == flows ? 0 : 3;
}
