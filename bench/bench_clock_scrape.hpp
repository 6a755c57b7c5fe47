// SPDX-License-Identifier: Apache-2.0
// What the daemon-driving benchmarks share: a monotonic clock in nanoseconds and a /metrics scrape.
#pragma once

#include <curl/curl.h>
#include <fmt/format.h>
#include <time.h>

#include <cstdint>
#include <string>

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

}  // namespace flowd::bench
