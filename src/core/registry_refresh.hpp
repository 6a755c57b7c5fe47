// SPDX-License-Identifier: Apache-2.0
// registry_refresh (issue 14): flow_map_api fetched again in the background every interval, on a
// thread of its own (never the supervisor's signal loop), conditionally (If-None-Match /
// If-Modified-Since from the cached copy's validators). A registry that differs is checked against
// the running configuration exactly as a reload's is (check_components) and then swapped into the
// RegistryHandle, which every component reads per use: no component restarts, nothing is lost
// (netflow's label_trust rebuilds its bitmap when it sees the new registry). A failure (download,
// parse, a refused registry) keeps the registry in use and is counted.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <thread>

#include "core/config_loader.hpp"
#include "core/registry_loader.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd {

class RegistryRefresh : public prometheus::Collectable {
 public:
  // Why a refresh kept the registry in use (label `reason` of
  // flowd_registry_refresh_failures_total).
  enum class Failure : std::uint8_t { kFetch, kParse, kRefused };
  static constexpr std::size_t kFailures = 3;

  // Registers flowd_registry_refresh_failures_total in `metrics` and flowd_registry_age_seconds
  // (read from `registry` at scrape time) in `hub`; both outlive this object.
  RegistryRefresh(RegistryHandle& registry, prometheus::Registry& metrics, MetricsHub& hub);
  ~RegistryRefresh() override;
  RegistryRefresh(const RegistryRefresh&) = delete;
  RegistryRefresh& operator=(const RegistryRefresh&) = delete;

  // The configuration in effect (at start, after each applied reload): its flow_map_api,
  // flow_map_timeout, work_dir and registry_refresh, and the components a new registry is checked
  // against. The next refresh is one interval from now (a start or reload has just fetched).
  // Starts the thread at the first call with an interval and a flow_map_api. Never blocks for
  // long: takes a lock the thread holds only between fetches.
  void configure(const Config& c);
  // Ends the thread; a download in progress gives up within about a second (libcurl's progress
  // callback sees the stop).
  void stop();

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void loop(std::stop_token stop);
  void refresh_once(const Config& c, std::stop_token stop);
  void fail(Failure f) { failures_[static_cast<std::size_t>(f)]->Increment(); }

  RegistryHandle& registry_;
  MetricsHub& hub_;
  std::array<prometheus::Counter*, kFailures> failures_{};

  std::mutex mu_;
  std::condition_variable_any changed_;
  Config config_;                                    // under mu_
  bool configured_ = false;                          // under mu_
  std::chrono::steady_clock::time_point next_{};     // under mu_
  std::size_t last_body_hash_ = 0;                   // the thread's: what it last installed
  LogLimiter limiter_{3, std::chrono::minutes(10)};  // the thread's
  std::jthread thread_;
};

}  // namespace flowd
