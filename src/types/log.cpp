// SPDX-License-Identifier: Apache-2.0
#include "flowd/log.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include <cstdio>
#include <cstdlib>

namespace flowd {
namespace {

// spdlog's own systemd sink cannot add fields; ours adds FLOWD_COMPONENT so that
// `journalctl FLOWD_COMPONENT=plugin.np_api` works.
class JournalSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    int prio = LOG_INFO;
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug:
        prio = LOG_DEBUG;
        break;
      case spdlog::level::info:
        prio = LOG_INFO;
        break;
      case spdlog::level::warn:
        prio = LOG_WARNING;
        break;
      case spdlog::level::err:
        prio = LOG_ERR;
        break;
      case spdlog::level::critical:
        prio = LOG_CRIT;
        break;
      default:
        break;
    }
    sd_journal_send("MESSAGE=%.*s", static_cast<int>(msg.payload.size()), msg.payload.data(),
                    "PRIORITY=%d", prio, "SYSLOG_IDENTIFIER=flowd", "FLOWD_COMPONENT=%.*s",
                    static_cast<int>(msg.logger_name.size()), msg.logger_name.data(), nullptr);
  }
  void flush_() override {}
};

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long dev = 0, ino = 0;
  if (std::sscanf(js, "%lu:%lu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

spdlog::sink_ptr& the_sink() {
  static spdlog::sink_ptr sink;
  return sink;
}

std::mutex& logger_mutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

void setup_logging(spdlog::level::level_enum level) {
  std::lock_guard lock(logger_mutex());
  if (!the_sink()) {
    if (stderr_is_journal()) {
      the_sink() = std::make_shared<JournalSink>();
    } else {
      the_sink() = std::make_shared<spdlog::sinks::stderr_sink_mt>();
      the_sink()->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
    }
  }
  spdlog::set_level(level);
  spdlog::flush_on(spdlog::level::trace);
}

void set_log_level(spdlog::level::level_enum level) {
  spdlog::set_level(level);
}

std::shared_ptr<spdlog::logger> get_logger(const std::string& component) {
  std::lock_guard lock(logger_mutex());
  if (auto l = spdlog::get(component)) return l;
  if (!the_sink()) {
    the_sink() = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    the_sink()->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
  }
  auto l = std::make_shared<spdlog::logger>(component, the_sink());
  l->set_level(spdlog::get_level());
  l->flush_on(spdlog::level::trace);
  spdlog::register_logger(l);
  return l;
}

bool parse_log_level(const std::string& s, spdlog::level::level_enum& out) {
  auto l = spdlog::level::from_str(s);
  if (l == spdlog::level::off && s != "off") return false;
  out = l;
  return true;
}

bool LogLimiter::allow(std::uint64_t& suppressed) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!started_) {
    started_ = true;
    tokens_ = burst_;
    last_refill_ = now;
  } else if (now - last_refill_ >= interval_) {
    tokens_ = std::max(tokens_, 1u);
    last_refill_ = now;
  }
  if (tokens_ == 0) {
    ++held_;
    suppressed = 0;
    return false;
  }
  --tokens_;
  suppressed = held_;
  held_ = 0;
  return true;
}

}  // namespace flowd
