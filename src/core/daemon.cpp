// SPDX-License-Identifier: Apache-2.0
#include "core/daemon.hpp"

#include <poll.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <ctime>

#include "core/build_info.hpp"
#include "core/config_loader.hpp"
#include "core/log.hpp"
#include "core/metrics_hub.hpp"
#include "core/registry_loader.hpp"
#include "core/runtime.hpp"

namespace flowd {
namespace {

spdlog::level::level_enum level_of(const Config& c, bool debug) {
  if (debug) return spdlog::level::debug;
  spdlog::level::level_enum l = spdlog::level::info;
  parse_log_level(c.core.get("log_level"), l);
  return l;
}

void log_warnings(const Config& c) {
  auto log = get_logger("core");
  for (const auto& w : c.warnings) log->warn("{}", w);
  if (c.legacy)
    log->warn(
        "{} is a legacy Python flowd.cfg; it works, but consider this INI equivalent "
        "(flowd --convert-config {}):\n{}",
        c.path, c.path, c.ini_equivalent);
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

std::shared_ptr<const ScitagsRegistry> fetch_registry(const Config& c) {
  auto load = load_registry(c.core.get("flow_map_api"), c.core.get("work_dir"),
                            c.core.get_int("flow_map_timeout"));
  auto log = get_logger("core");
  if (!load.warning.empty()) log->warn("{}", load.warning);
  log->info("registry: {} experiments from {}", load.registry->experiment_count(),
            load.registry->source());
  return load.registry;
}

}  // namespace

int run_daemon(const DaemonOptions& opts) {
  setup_logging(opts.debug ? spdlog::level::debug : spdlog::level::info);
  auto log = get_logger("core");
  Config config;
  try {
    config = load_config(opts.config_path);
  } catch (const ConfigError& e) {
    log->error("{}", e.what());
    return 2;
  }
  set_log_level(level_of(config, opts.debug));
  log_warnings(config);
  log->info("flowd-cpp {} starting with {}", FLOWD_VERSION, config.path);

  // Signals are taken from a signalfd; every thread started below inherits this mask.
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, s);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    log->error("signalfd: {}", std::strerror(errno));
    return 1;
  }

  prometheus::Registry metrics;
  prometheus::BuildGauge()
      .Name("flowd_build_info")
      .Help("Always 1; labels say which flowd build is running")
      .Register(metrics)
      .Add({{"version", FLOWD_VERSION}, {"commit", kBuildCommit}})
      .Set(1);
  MetricsHub hub(metrics);
  RegistryHandle registry(fetch_registry(config));
  Runtime runtime(metrics, hub, registry);
  try {
    runtime.apply(config);
  } catch (const ConfigError& e) {
    // A value only a component can check (a registry name, an interface): still a config error.
    log->error("{}", e.what());
    sd_notifyf(0, "STATUS=configuration error: %s", e.what());
    runtime.stop_all();
    return 2;
  } catch (const std::exception& e) {
    log->error("cannot start: {}", e.what());
    sd_notifyf(0, "STATUS=failed to start: %s", e.what());
    runtime.stop_all();
    return 1;
  }
  int tfd = -1;
  std::uint64_t watchdog_usec = 0;
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    itimerspec its{};
    std::uint64_t half = watchdog_usec / 2;
    its.it_interval.tv_sec = static_cast<time_t>(half / 1000000);
    its.it_interval.tv_nsec = static_cast<long>((half % 1000000) * 1000);
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, nullptr);
    log->info("systemd watchdog every {} ms", half / 1000);
  }

  log->info("ready: {}", runtime.summary());
  sd_notifyf(0, "READY=1\nSTATUS=%s", runtime.summary().c_str());

  int exit_code = 0;
  bool running = true;
  while (running) {
    pollfd fds[3] = {{sfd, POLLIN, 0}, {runtime.failure_fd(), POLLIN, 0}, {tfd, POLLIN, 0}};
    int n = poll(fds, tfd >= 0 ? 3 : 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log->error("poll: {}", std::strerror(errno));
      exit_code = 1;
      break;
    }
    if (fds[1].revents) {
      log->error("worker failed: {}; exiting so that the service manager restarts flowd",
                 runtime.failure());
      sd_notifyf(0, "STATUS=worker failed: %s", runtime.failure().c_str());
      exit_code = 1;
      break;
    }
    if (tfd >= 0 && fds[2].revents) {
      std::uint64_t ticks;
      [[maybe_unused]] auto r = read(tfd, &ticks, sizeof ticks);
      sd_notify(0, "WATCHDOG=1");
    }
    if (fds[0].revents) {
      signalfd_siginfo si{};
      while (read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
          log->info("received {}, stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
          running = false;
          break;
        }
        log->info("received {}, reloading {}", si.ssi_signo == SIGHUP ? "SIGHUP" : "SIGUSR1",
                  opts.config_path);
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   static_cast<unsigned long long>(monotonic_usec()));
        Config next;
        try {
          next = load_config(opts.config_path);
        } catch (const ConfigError& e) {
          log->error("reload refused, still running the previous configuration: {}", e.what());
          sd_notifyf(0, "READY=1\nSTATUS=reload failed (%s); %s", e.what(),
                     runtime.summary().c_str());
          continue;
        }
        set_log_level(level_of(next, opts.debug));
        log_warnings(next);
        registry.set(fetch_registry(next));
        try {
          runtime.apply(next);
          config = std::move(next);
          log->info("reloaded: {}", runtime.summary());
          sd_notifyf(0, "READY=1\nSTATUS=%s", runtime.summary().c_str());
        } catch (const std::exception& e) {
          log->error(
              "reload failed while starting components ({}); going back to the previous "
              "configuration",
              e.what());
          try {
            runtime.apply(config);
            sd_notifyf(0, "READY=1\nSTATUS=reload failed (%s); %s", e.what(),
                       runtime.summary().c_str());
          } catch (const std::exception& e2) {
            log->error("the previous configuration does not start again either: {}", e2.what());
            exit_code = 1;
            running = false;
            break;
          }
        }
      }
    }
  }
  sd_notify(0, "STOPPING=1");
  runtime.stop_all();
  if (tfd >= 0) close(tfd);
  close(sfd);
  log->info("stopped");
  return exit_code;
}

}  // namespace flowd
