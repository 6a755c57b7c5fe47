// SPDX-License-Identifier: Apache-2.0
// spdlog set-up: the journal (with FLOWD_COMPONENT=) when stderr is the journal stream, else
// stderr.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace flowd {

void setup_logging(spdlog::level::level_enum level);
void set_log_level(spdlog::level::level_enum level);
// One logger per component ("core", "plugin.np_api", "backend.udp_firefly", ...).
std::shared_ptr<spdlog::logger> get_logger(const std::string& component);
bool parse_log_level(const std::string& s, spdlog::level::level_enum& out);

// Keeps repeated warnings about bad input from flooding the log: `burst` lines, then at most
// one per `interval`; what was held back is reported with the next line let through.
class LogLimiter {
 public:
  explicit LogLimiter(unsigned burst = 10,
                      std::chrono::milliseconds interval = std::chrono::seconds(1))
      : burst_(burst), interval_(interval) {}
  // True if a line may be logged now; `suppressed` gets the count held back since the last one.
  bool allow(std::uint64_t& suppressed);

 private:
  std::mutex mu_;
  unsigned burst_;
  std::chrono::milliseconds interval_;
  unsigned tokens_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_refill_{};
  std::uint64_t held_ = 0;
};

// Logs one line at `level` through `limiter`: nothing while the limiter holds lines back, else the
// message, with " (N more not logged)" when N lines were held back since the last one. For what a
// peer can repeat at will (bad input, connections opened and closed).
template <typename... Args>
void limited_log(spdlog::logger& log, LogLimiter& limiter, spdlog::level::level_enum level,
                 fmt::format_string<Args...> format, Args&&... args) {
  if (!log.should_log(level)) return;
  std::uint64_t held = 0;
  if (!limiter.allow(held)) return;
  if (held == 0) {
    log.log(level, format, std::forward<Args>(args)...);
    return;
  }
  log.log(level, "{} ({} more not logged)", fmt::format(format, std::forward<Args>(args)...), held);
}

// limited_log at warn: the one way a component reports input it refuses (the per-reason count is
// ReasonCounters').
template <typename... Args>
void limited_warn(spdlog::logger& log, LogLimiter& limiter, fmt::format_string<Args...> format,
                  Args&&... args) {
  limited_log(log, limiter, spdlog::level::warn, format, std::forward<Args>(args)...);
}

}  // namespace flowd
