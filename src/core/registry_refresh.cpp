// SPDX-License-Identifier: Apache-2.0
#include "core/registry_refresh.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include <fstream>
#include <functional>
#include <sstream>

#include "core/config_check.hpp"
#include "flowd/log.hpp"
#include "flowd/thread_name.hpp"

namespace flowd {
namespace {

std::string_view to_string(RegistryRefresh::Failure f) {
  switch (f) {
    case RegistryRefresh::Failure::kFetch:
      return "fetch";
    case RegistryRefresh::Failure::kParse:
      return "parse";
    case RegistryRefresh::Failure::kRefused:
      return "refused";
  }
  return "?";
}

std::chrono::milliseconds interval_of(const Config& c) {
  return c.core.get("flow_map_api").empty() ? std::chrono::milliseconds(0)
                                            : c.core.get_duration("registry_refresh");
}

// Whether `body` is what the cache in `work_dir` holds (the copy downloaded at the start).
bool same_as_cache(const std::string& work_dir, const std::string& body) {
  if (work_dir.empty()) return false;
  std::ifstream in(work_dir + "/api.json", std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str() == body;
}

}  // namespace

RegistryRefresh::RegistryRefresh(RegistryHandle& registry, prometheus::Registry& metrics,
                                 MetricsHub& hub)
    : registry_(registry), hub_(hub) {
  auto& failures = prometheus::BuildCounter()
                       .Name("flowd_registry_refresh_failures_total")
                       .Help(
                           "Background registry refreshes that kept the registry in use, by "
                           "reason: fetch (download or file failed, timed out), parse (not a "
                           "registry), refused (a configured component refused it)")
                       .Register(metrics);
  for (std::size_t i = 0; i < kFailures; ++i)
    failures_[i] = &failures.Add({{"reason", std::string(to_string(static_cast<Failure>(i)))}});
  hub_.add(this);
}

RegistryRefresh::~RegistryRefresh() {
  stop();
  hub_.remove(this);
}

std::vector<prometheus::MetricFamily> RegistryRefresh::Collect() const {
  prometheus::MetricFamily f;
  f.name = "flowd_registry_age_seconds";
  f.help =
      "Seconds since the registry in use was last fetched or confirmed unchanged (HTTP 304) from "
      "flow_map_api; for the cached copy, since it was downloaded; for the built-in snapshot, "
      "since its `modified` time";
  f.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric m;
  m.gauge.value = registry_.age_seconds();
  f.metric.push_back(m);
  return {f};
}

void RegistryRefresh::configure(const Config& c) {
  const auto interval = interval_of(c);
  {
    std::lock_guard lock(mu_);
    config_ = c;
    configured_ = true;
    next_ = std::chrono::steady_clock::now() + interval;
  }
  changed_.notify_all();
  if (interval.count() > 0 && !thread_.joinable())
    thread_ = std::jthread([this](std::stop_token stop) {
      set_thread_name("core.registry");
      loop(stop);
    });
}

void RegistryRefresh::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  changed_.notify_all();
  thread_.join();
}

void RegistryRefresh::loop(std::stop_token stop) {
  std::unique_lock lock(mu_);
  while (!stop.stop_requested()) {
    const auto interval = interval_of(config_);
    if (interval.count() <= 0) {
      // Turned off by a reload (or no flow_map_api): wait for the next configuration.
      const auto seen = next_;
      changed_.wait(lock, stop, [&] { return next_ != seen; });
      continue;
    }
    const auto due = next_;
    if (changed_.wait_until(lock, stop, due, [&] { return next_ != due; })) continue;
    if (stop.stop_requested()) break;
    // Due: a copy of the configuration, and the lock released while fetching (a reload's
    // configure() must not wait for a download).
    Config c = config_;
    next_ = std::chrono::steady_clock::now() + interval;
    lock.unlock();
    refresh_once(c, stop);
    lock.lock();
  }
}

void RegistryRefresh::refresh_once(const Config& c, std::stop_token stop) {
  auto log = get_logger("core");
  const std::string source = c.core.get("flow_map_api");
  const std::string work_dir = c.core.get("work_dir");
  const auto before = registry_.get();
  const bool url = source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0;
  // The cached copy's validators, while the registry in use is that copy (downloaded, confirmed,
  // or the fallback at a start): a 304 then says it is current.
  RegistryValidators known;
  if (url && (before->source().starts_with(source) ||
              before->source().find("(cached copy)") != std::string::npos))
    known = read_cached_validators(work_dir);
  RegistryFetch f = fetch_registry(source, known, c.core.get_int("flow_map_timeout"), stop);
  if (stop.stop_requested()) return;
  const auto now = std::chrono::system_clock::now();
  switch (f.status) {
    case RegistryFetch::Status::kFailed:
      fail(Failure::kFetch);
      limited_warn(*log, limiter_,
                   "registry refresh: flow_map_api {}: {}; still using {} ({:.0f} s old)", source,
                   f.error, before->source(), registry_.age_seconds(now));
      return;
    case RegistryFetch::Status::kNotModified:
      log->debug("registry refresh: {} not modified", source);
      registry_.confirm(now);
      return;
    case RegistryFetch::Status::kNew:
      break;
  }
  const std::size_t hash = std::hash<std::string>{}(f.body);
  if (before->source() == source && (hash == last_body_hash_ || same_as_cache(work_dir, f.body))) {
    // The same bytes again (a server without validators, a file): still current.
    registry_.confirm(now);
    return;
  }
  std::string error;
  auto reg = parse_registry(f.body, source, error);
  if (!reg) {
    fail(Failure::kParse);
    limited_warn(*log, limiter_,
                 "registry refresh: flow_map_api {}: {}; still using {} ({:.0f} s old)", source,
                 error, before->source(), registry_.age_seconds(now));
    return;
  }
  // Checked as a reload's registry is: a rule naming an experiment the new registry dropped must
  // not silently change meaning under a running component.
  try {
    check_components(c, reg);
  } catch (const ConfigError& e) {
    fail(Failure::kRefused);
    limited_warn(*log, limiter_,
                 "registry refresh: the registry from {} does not suit the configuration ({}); "
                 "still using {} ({:.0f} s old)",
                 source, e.what(), before->source(), registry_.age_seconds(now));
    return;
  }
  if (!registry_.replace(before, reg, now)) {
    // A reload installed its own registry meanwhile: it is as fresh, and it was checked.
    log->debug("registry refresh: a reload replaced the registry meanwhile; discarded");
    return;
  }
  last_body_hash_ = hash;
  if (url) write_registry_cache(work_dir, f.body, f.validators);
  log->info("registry refreshed: {} experiments from {} (modified {})", reg->experiment_count(),
            source, reg->modified());
}

}  // namespace flowd
