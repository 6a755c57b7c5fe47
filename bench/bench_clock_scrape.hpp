// SPDX-License-Identifier: Apache-2.0
// What the daemon-driving benchmarks share: a monotonic clock in nanoseconds, a /metrics scrape,
// the loopback UDP socket that receives flowd's fireflies, and the reader that times their arrival.
#pragma once

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace flowd::bench {

inline std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The body of http://127.0.0.1:PORT/metrics ("" if nothing answered).
inline std::string scrape(int port) {
  std::string body;
  CURL* h = curl_easy_init();
  auto url = fmt::format("http://127.0.0.1:{}/metrics", port);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION, +[](char* p, std::size_t s, std::size_t n, void* u) {
        static_cast<std::string*>(u)->append(p, s * n);
        return s * n;
      });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_perform(h);
  curl_easy_cleanup(h);
  return body;
}

// Send-to-arrival latencies of the items that arrived (recv_at[i] != 0), in ms, sorted; `last` is
// the latest arrival (ns, now_ns clock). Shared by the pipe and API benches.
struct Latencies {
  std::vector<double> ms;
  std::int64_t last = 0;
  double quantile(double p) const {
    return ms.empty() ? 0.0 : ms[static_cast<std::size_t>(p * static_cast<double>(ms.size() - 1))];
  }
  double max() const { return ms.empty() ? 0.0 : ms.back(); }
};

inline Latencies latencies(const std::vector<std::int64_t>& sent,
                           const std::vector<std::int64_t>& recv_at) {
  Latencies l;
  for (std::size_t i = 0; i < recv_at.size() && i < sent.size(); ++i)
    if (recv_at[i]) {
      l.ms.push_back(static_cast<double>(recv_at[i] - sent[i]) / 1e6);
      l.last = std::max(l.last, recv_at[i]);
    }
  std::sort(l.ms.begin(), l.ms.end());
  return l;
}

// A run of consecutive lines whose latency was above a threshold: where a p99 comes from. A p99 of
// a paced run is mostly the longest such window (a pause of the whole pipeline delays every line
// written during it), so knowing when the windows happen (at which line, how far into the run)
// tells a pause at a table's growth (at powers of two) from a scheduler's or a timer's.
struct StallWindow {
  std::size_t first = 0;  // index of the first slow line
  std::size_t lines = 0;  // how many consecutive lines were slow
  double at_s = 0;        // when the first slow line was written, seconds after the first line
  double worst_ms = 0;    // the highest latency in the window
};

// The `top` longest-latency windows of lines slower than threshold_ms, worst first. Lines never
// received end a window.
inline std::vector<StallWindow> stall_windows(const std::vector<std::int64_t>& sent,
                                              const std::vector<std::int64_t>& recv_at,
                                              double threshold_ms, std::size_t top) {
  std::vector<StallWindow> all;
  StallWindow cur;
  bool open = false;
  const std::int64_t t0 = sent.empty() ? 0 : sent.front();
  for (std::size_t i = 0; i < recv_at.size() && i < sent.size(); ++i) {
    const double ms = recv_at[i] ? static_cast<double>(recv_at[i] - sent[i]) / 1e6 : -1.0;
    if (ms > threshold_ms) {
      if (!open) {
        cur = StallWindow{i, 0, static_cast<double>(sent[i] - t0) / 1e9, 0};
        open = true;
      }
      ++cur.lines;
      cur.worst_ms = std::max(cur.worst_ms, ms);
    } else if (open) {
      all.push_back(cur);
      open = false;
    }
  }
  if (open) all.push_back(cur);
  std::sort(all.begin(), all.end(),
            [](const StallWindow& a, const StallWindow& b) { return a.worst_ms > b.worst_ms; });
  if (all.size() > top) all.resize(top);
  return all;
}

// A UDP socket bound to 127.0.0.1 on a free port with a receive buffer of `rcvbuf` bytes
// (SO_RCVBUFFORCE as root, else SO_RCVBUF up to the system's cap). Returns {fd, port}.
struct UdpReceiver {
  int fd = -1;
  int port = 0;
};
inline UdpReceiver loopback_udp_receiver(int rcvbuf) {
  UdpReceiver r;
  r.fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (setsockopt(r.fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(r.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(r.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(r.fd, reinterpret_cast<sockaddr*>(&a), &len);
  r.port = ntohs(a.sin_port);
  return r;
}

// Reads fireflies from `fd` until `count` distinct flows arrived or nothing came for 3 s, and
// stamps each flow's arrival (now_ns) in recv_at. The benches number their flows through the
// ports: flow i has src-port i / 65535 and dst-port i % 65535 + 1 (never 0 or 65536).
inline void receive_numbered_fireflies(int fd, long count, std::vector<std::int64_t>& recv_at,
                                       std::atomic<long>& received) {
  char buf[2048];
  while (received.load() < count) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 3000) <= 0) break;
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) continue;
    std::int64_t t = now_ns();
    buf[n] = 0;
    std::string_view m(buf, static_cast<std::size_t>(n));
    auto sp = m.find("\"src-port\": "), dp = m.find("\"dst-port\": ");
    if (sp == std::string_view::npos || dp == std::string_view::npos) continue;
    long idx = std::atol(buf + sp + 12) * 65535 + std::atol(buf + dp + 12) - 1;
    if (idx >= 0 && idx < count && recv_at[static_cast<std::size_t>(idx)] == 0) {
      recv_at[static_cast<std::size_t>(idx)] = t;
      received.fetch_add(1);
    }
  }
}

}  // namespace flowd::bench
