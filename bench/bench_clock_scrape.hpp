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
