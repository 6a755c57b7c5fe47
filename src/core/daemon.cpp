// SPDX-License-Identifier: Apache-2.0
#include "core/daemon.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <system_error>
#include <thread>

#include "common/unique_fd.hpp"
#include "core/build_info.hpp"
#include "core/config_check.hpp"
#include "core/config_loader.hpp"
#include "core/registry_loader.hpp"
#include "core/registry_refresh.hpp"
#include "core/runtime.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/stop_fd.hpp"
#include "flowd/thread_name.hpp"

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

// Start-up does network work before the signal loop runs: the registry download (up to
// flow_map_timeout) and the components' start() (STUN). Meanwhile this thread reads the signalfd,
// so that SIGTERM/SIGINT cut that work short (a stop of the unit must not wait for a timeout) and a
// SIGHUP/SIGUSR1 is remembered for the loop, not lost.
class StartupSignals {
 public:
  explicit StartupSignals(int sfd)
      : thread_([this, sfd](std::stop_token own) { watch(sfd, own); }) {}
  ~StartupSignals() { done(); }
  StartupSignals(const StartupSignals&) = delete;
  StartupSignals& operator=(const StartupSignals&) = delete;
  std::stop_token stopping() const { return stop_.get_token(); }
  // Ends the watch; afterwards stop_requested() and reload_requested() are final.
  void done() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    thread_.join();
  }
  bool stop_requested() const { return stop_.stop_requested(); }
  bool reload_requested() const { return reload_; }

 private:
  void watch(int sfd, const std::stop_token& own) {
    StopFd wake(own);
    while (!own.stop_requested() && !stop_.stop_requested()) {
      pollfd fds[2] = {{sfd, POLLIN, 0}, {wake.fd(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      signalfd_siginfo si{};
      while (read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
          get_logger("core")->info("received {} while starting, stopping",
                                   si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
          stop_.request_stop();
          return;
        }
        get_logger("core")->info("received a reload signal while starting; it follows the start");
        reload_ = true;
      }
    }
  }
  std::stop_source stop_;
  std::atomic<bool> reload_{false};
  std::jthread thread_;  // last: started after the members it uses exist
};

RegistryLoad load_configured_registry(const Config& c, std::stop_token stop = {}) {
  auto load = load_registry(c.core.get("flow_map_api"), c.core.get("work_dir"),
                            c.core.get_int("flow_map_timeout"), stop);
  auto log = get_logger("core");
  if (!load.warning.empty()) log->warn("{}", load.warning);
  log->info("registry: {} experiments from {}", load.registry->experiment_count(),
            load.registry->source());
  return load;
}

// The slow half of a reload, on a thread of its own: the registry download (up to flow_map_timeout)
// and Runtime::apply, whose components may do network work in start()/reloaded() (STUN: up to
// stun_timeout_ms x stun_attempts per server and family). Meanwhile the signal loop keeps answering
// SIGTERM and sending WATCHDOG=1; a stop cuts the network work short (Runtime::stopping).
struct Reload {
  enum class Outcome { kApplied, kRefused, kRolledBack, kFatal, kAbandoned };

  Reload() : done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), done_fd(done.get()) {
    if (done_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~Reload() {
    if (thread.joinable()) thread.join();
  }
  Reload(const Reload&) = delete;
  Reload& operator=(const Reload&) = delete;

  // On the reload thread. `previous` is applied again when `next` does not start.
  void run(const Config& previous, Runtime& runtime, RegistryHandle& registry) {
    auto log = get_logger("core");
    const auto stop = runtime.stopping();
    try {
      auto load = load_configured_registry(next, stop);
      auto& reg = load.registry;
      if (stop.stop_requested()) {
        outcome = Outcome::kAbandoned;
      } else if (std::string why; !components_accept(next, reg, why)) {
        // Refused before anything stops: a value only a component checks (a rule's experiment, an
        // allow list) must not cost the running components their state (templates, flows, marks).
        error = why;
        log->error("reload refused, still running the previous configuration: {}", why);
        outcome = Outcome::kRefused;
      } else {
        registry.set(std::move(reg), load.current_at);
        try {
          runtime.apply(next);
          outcome = Outcome::kApplied;
        } catch (const std::exception& e) {
          error = e.what();
          log->error(
              "reload failed while starting components ({}); going back to the previous "
              "configuration",
              e.what());
          try {
            runtime.apply(previous);
            outcome = Outcome::kRolledBack;
          } catch (const std::exception& e2) {
            log->error("the previous configuration does not start again either: {}", e2.what());
            outcome = Outcome::kFatal;
          }
        }
      }
    } catch (const std::exception& e) {
      log->error("reload failed: {}", e.what());
      outcome = Outcome::kFatal;
    }
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(done_fd, &one, sizeof one);
  }

  Config next;
  Outcome outcome = Outcome::kAbandoned;
  std::string error;  // kRefused, kRolledBack: why `next` was not applied

 private:
  static bool components_accept(const Config& c, std::shared_ptr<const ScitagsRegistry> reg,
                                std::string& why) {
    try {
      check_components(c, std::move(reg));
      return true;
    } catch (const ConfigError& e) {
      why = e.what();
      return false;
    }
  }

 public:
  UniqueFd done;
  int done_fd;
  std::jthread thread;
};

}  // namespace

int run_daemon(const DaemonOptions& opts, const ComponentTable& components) {
  // Signals are taken from a signalfd; every thread started below inherits this mask. Blocked
  // first, so that a SIGHUP or SIGTERM that arrives while the configuration is read waits for the
  // signalfd instead of killing the process by its default action.
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&mask, s);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  setup_logging(opts.debug ? spdlog::level::debug : spdlog::level::info);
  auto log = get_logger("core");
  Config config;
  try {
    config = load_config(opts.config_path, components);
  } catch (const ConfigError& e) {
    log->error("{}", e.what());
    return 2;
  }
  set_log_level(level_of(config, opts.debug));
  log_warnings(config);
  log->info("flowd-cpp {} starting with {}", FLOWD_VERSION, config.path);

  UniqueFd signals(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  const int sfd = signals.get();
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
  StartupSignals startup(sfd);
  auto first = load_configured_registry(config, startup.stopping());
  RegistryHandle registry(std::move(first.registry), first.current_at);
  Runtime runtime(metrics, hub, registry);
  // Declared after the runtime: it stops (and ends a download in progress) before the components.
  RegistryRefresh refresh(registry, metrics, hub);
  std::stop_callback stop_components(startup.stopping(), [&runtime] { runtime.request_stop(); });
  try {
    // Every component is built once without starting (as --check-config and a reload do), so
    // that a value only a component can check stops flowd before anything started: no socket
    // bound, no pipe made, no filter attached for a moment.
    if (!startup.stop_requested()) check_components(config, registry.get());
    if (!startup.stop_requested()) runtime.apply(config);
  } catch (const ConfigError& e) {
    // A value only a component can check (a registry name, an interface): still a config error,
    // in the file named once (check_components names it; a component's start() does not).
    const std::string why = in_config_file(config.path, e.what());
    log->error("{}", why);
    sd_notifyf(0, "STATUS=configuration error: %s", why.c_str());
    runtime.stop_all();
    return 2;
  } catch (const std::exception& e) {
    if (startup.stop_requested()) {  // the start was cut short on purpose
      log->info("stopped while starting ({})", e.what());
      runtime.stop_all();
      return 0;
    }
    log->error("cannot start: {}", e.what());
    sd_notifyf(0, "STATUS=failed to start: %s", e.what());
    runtime.stop_all();
    return 1;
  }
  UniqueFd watchdog_timer;
  int tfd = -1;
  std::uint64_t watchdog_usec = 0;
  // A worker busy outside its wait for work for longer than this is stuck: WATCHDOG=1 is withheld,
  // so that systemd restarts flowd. Half the watchdog period, but never less than 5 s, which no
  // healthy worker spends on one batch.
  std::chrono::microseconds stall_limit{0};
  if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
    watchdog_timer = UniqueFd(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    tfd = watchdog_timer.get();
    if (tfd < 0) {
      log->error("cannot arm the systemd watchdog: timerfd_create: {}", std::strerror(errno));
      sd_notifyf(0, "STATUS=failed to start: timerfd_create: %s", std::strerror(errno));
      runtime.stop_all();
      return 1;
    }
    stall_limit = std::max<std::chrono::microseconds>(std::chrono::microseconds(watchdog_usec / 2),
                                                      std::chrono::seconds(5));
    itimerspec its{};
    std::uint64_t half = watchdog_usec / 2;
    its.it_interval.tv_sec = static_cast<time_t>(half / 1000000);
    its.it_interval.tv_nsec = static_cast<long>((half % 1000000) * 1000);
    its.it_value = its.it_interval;
    timerfd_settime(tfd, 0, &its, nullptr);
    log->info("systemd watchdog every {} ms", half / 1000);
  }

  startup.done();
  if (startup.stop_requested()) {
    sd_notify(0, "STOPPING=1");
    runtime.stop_all();
    log->info("stopped before it was ready");
    return 0;
  }
  refresh.configure(config);
  log->info("ready: {}", runtime.summary());
  sd_notifyf(0, "READY=1\nSTATUS=%s", runtime.summary().c_str());

  int exit_code = 0;
  bool running = true;
  std::unique_ptr<Reload> reload;  // the reload in progress, if any
  bool reload_again = false;       // a reload signal came during one: another follows it
  bool stalled = false;            // WATCHDOG=1 is being withheld
  auto start_reload = [&] {
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               static_cast<unsigned long long>(monotonic_usec()));
    Config next;
    try {
      next = load_config(opts.config_path, components);
    } catch (const ConfigError& e) {
      log->error("reload refused, still running the previous configuration: {}", e.what());
      sd_notifyf(0, "READY=1\nSTATUS=reload failed (%s); %s", e.what(), runtime.summary().c_str());
      return;
    }
    set_log_level(level_of(next, opts.debug));
    log_warnings(next);
    reload = std::make_unique<Reload>();
    reload->next = std::move(next);
    reload->thread = std::jthread([&runtime, &registry, r = reload.get(), previous = config] {
      set_thread_name("core.reload");
      r->run(previous, runtime, registry);
    });
  };
  auto finish_reload = [&] {
    reload->thread.join();
    switch (reload->outcome) {
      case Reload::Outcome::kApplied:
        config = std::move(reload->next);
        refresh.configure(config);
        log->info("reloaded: {}", runtime.summary());
        sd_notifyf(0, "READY=1\nSTATUS=%s", runtime.summary().c_str());
        break;
      case Reload::Outcome::kRefused:
      case Reload::Outcome::kRolledBack:
        sd_notifyf(0, "READY=1\nSTATUS=reload failed (%s); %s", reload->error.c_str(),
                   runtime.summary().c_str());
        break;
      case Reload::Outcome::kFatal:
      case Reload::Outcome::kAbandoned:
        exit_code = 1;
        running = false;
        break;
    }
    reload.reset();
  };
  if (startup.reload_requested()) start_reload();
  const int journal_fd = runtime.journal_stale_fd();
  while (running) {
    pollfd fds[5] = {{sfd, POLLIN, 0},
                     {runtime.failure_fd(), POLLIN, 0},
                     {tfd, POLLIN, 0},
                     {reload ? reload->done_fd : -1, POLLIN, 0},  // poll() skips negative fds
                     {journal_fd, POLLIN, 0}};
    // A flow journal a full disk left behind (its eventfd says when) is tried again each second
    // while flowd is idle (try15m: a kill -9 after the disk had room again, with no flow since,
    // found it outdated).
    int n = poll(fds, 5, runtime.retry_journal() ? 1000 : -1);
    if (n > 0 && fds[4].revents) {
      std::uint64_t ticks;
      [[maybe_unused]] auto r = read(journal_fd, &ticks, sizeof ticks);
      continue;  // the loop's next poll tries it
    }
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
      // Only while every worker makes progress: a stuck one must not be hidden behind a live main
      // thread.
      auto stuck = runtime.stalled(stall_limit);
      if (stuck.empty()) {
        if (stalled) log->info("every worker makes progress again; sending WATCHDOG=1 again");
        sd_notify(0, "WATCHDOG=1");
        stalled = false;
      } else if (!stalled) {
        stalled = true;
        log->error(
            "worker stalled: {} busy outside its wait for work; WATCHDOG=1 withheld, so that the "
            "service manager restarts flowd",
            fmt::join(stuck, ", "));
        sd_notifyf(0, "STATUS=worker stalled: %s",
                   fmt::format("{}", fmt::join(stuck, ", ")).c_str());
      }
    }
    if (reload && fds[3].revents) {
      finish_reload();
      if (running && reload_again) {
        reload_again = false;
        start_reload();
      }
    }
    if (fds[0].revents) {
      signalfd_siginfo si{};
      while (running && read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
          log->info("received {}, stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
          running = false;
          break;
        }
        log->info("received {}, reloading {}", si.ssi_signo == SIGHUP ? "SIGHUP" : "SIGUSR1",
                  opts.config_path);
        if (reload) {
          log->info("a reload is in progress; another follows it");
          reload_again = true;
          continue;
        }
        start_reload();
      }
    }
  }
  sd_notify(0, "STOPPING=1");
  // A reload in progress gives up its network work and ends before the components stop.
  runtime.request_stop();
  refresh.stop();
  reload.reset();
  runtime.stop_all();
  log->info("stopped: {}", runtime.event_totals());
  return exit_code;
}

}  // namespace flowd
