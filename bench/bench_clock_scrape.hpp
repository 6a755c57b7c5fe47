// SPDX-License-Identifier: Apache-2.0
// What the daemon-driving benchmarks share: a monotonic clock in nanoseconds and a /metrics scrape.
#pragma once

#include <curl/curl.h>
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <string>
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

}  // namespace flowd::bench
