// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/scanner_plugin.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <algorithm>
#include <limits>

#include <charconv>
#include <sstream>
#include <unordered_set>

#include "common/counted.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/reload_shelf.hpp"
#include "flowd/stop_fd.hpp"

namespace flowd::scanner {

ScannerOptions scanner_options(const Section& cfg, const std::string& section) {
  ScannerOptions o;
  o.interval = cfg.get_duration("interval");
  o.filter.ignore_private = cfg.get_bool("ignore_private");
  o.report_existing = cfg.get_bool("report_existing");
  for (const auto& text : cfg.get_list("internal_networks")) {
    std::string why;
    auto p = net::parse_network(text, why);
    if (!p) throw ConfigError("[" + section + "] internal_networks: '" + text + "' " + why);
    o.filter.internal.push_back(*p);
  }
  return o;
}

namespace {

std::optional<scanner::Tag> resolve_tag(const ScitagsRegistry& reg, const std::string& exp,
                                        const std::string& act, std::string& error) {
  auto e = reg.experiment_id(exp);
  if (!e) {
    error = "unknown experiment '" + exp + "'";
    return std::nullopt;
  }
  // The original treats an empty activity as 0.
  auto a = act.empty() ? std::optional<unsigned>(0) : reg.activity_id(*e, act);
  if (!a) {
    error = "unknown activity '" + act + "' of experiment '" + exp + "'";
    return std::nullopt;
  }
  return scanner::Tag{static_cast<std::uint16_t>(*e), static_cast<std::uint16_t>(*a)};
}

}  // namespace

PortRules port_rules(const Section& cfg, const ScitagsRegistry& reg, const std::string& section,
                     bool required) {
  std::optional<scanner::Tag> fallback;
  std::string error;
  if (!cfg.get("experiment").empty()) {
    fallback = resolve_tag(reg, cfg.get("experiment"), cfg.get("activity"), error);
    if (!fallback) throw ConfigError("[" + section + "] experiment/activity: " + error);
  } else if (!cfg.get("activity").empty()) {
    throw ConfigError("[" + section + "] activity: needs experiment");
  }
  std::map<std::uint16_t, scanner::Tag> by_port;
  for (const auto& text : cfg.get_list("rules")) {
    std::istringstream in(text);
    std::string port_text, exp, act, word;
    in >> port_text >> exp;
    // Activity names may contain spaces ("Data Challenge").
    while (in >> word) act += (act.empty() ? "" : " ") + word;
    unsigned long port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    const bool number = !port_text.empty() && p == port_text.data() + port_text.size() &&
                        ec != std::errc::invalid_argument;
    if (exp.empty() || act.empty() || !number)
      throw ConfigError("[" + section + "] rules: '" + text +
                        "': expected 'LOCAL_PORT EXPERIMENT ACTIVITY'");
    if (ec == std::errc::result_out_of_range || port == 0 || port > 65535)
      throw ConfigError("[" + section + "] rules: '" + text + "': local port " + port_text +
                        " is not a port (1 to 65535)");
    auto tag = resolve_tag(reg, exp, act, error);
    if (!tag) throw ConfigError("[" + section + "] rules: '" + text + "': " + error);
    // A second rule for a port would silently replace the first: one local port, one tag.
    if (!by_port.emplace(static_cast<std::uint16_t>(port), *tag).second)
      throw ConfigError("[" + section + "] rules: '" + text + "': local port " +
                        std::to_string(port) + " has a rule already (one rule per port)");
  }
  if (required && !fallback && by_port.empty())
    throw ConfigError(
        "[" + section +
        "] experiment: required (the tag of every connection), unless rules are given");
  return {fallback, std::move(by_port)};
}

scanner::Tagger port_rule_tagger(const Section& cfg, const ScitagsRegistry& reg,
                                 const std::string& section) {
  auto rules = port_rules(cfg, reg, section);
  return [fallback = rules.fallback, by_port = std::move(rules.by_port)](
             const scanner::Connection& c, bool&) -> std::optional<scanner::Tag> {
    if (auto it = by_port.find(c.local_port); it != by_port.end()) return it->second;
    return fallback;
  };
}

bool scan_sock_diag(netlink::SockDiag& diag, const ConnectionVisitor& visit, std::string& error) {
  netlink::DumpRequest req;
  req.states = ~(1u << netlink::kTcpListen);
  scanner::Connection c;
  return diag.dump(
      req,
      [&](const netlink::SockEntry& e, const netlink::TcpDetails*) {
        c.local = e.local;
        c.remote = e.remote;
        c.local_port = e.local_port;
        c.remote_port = e.remote_port;
        c.state = e.state;
        c.inode = e.inode;
        c.cookie = e.cookie;
        visit(c);
      },
      error);
}

std::size_t inherit_flows(ConnectionTracker& tracker, DaemonStatus* status, const char* plugin) {
  if (!status) return 0;
  return tracker.inherit(status->reported_flows(plugin), plugin);
}

std::vector<FlowKey> expect_restarts(ConnectionTracker& tracker, DaemonStatus* status,
                                     const char* plugin) {
  if (!status) return {};
  const auto restarts = status->take_restarts(plugin);
  tracker.expect_restarts(restarts);
  std::vector<FlowKey> keys;
  keys.reserve(restarts.size());
  for (const auto& r : restarts) keys.push_back(r.key);
  return keys;
}

std::string reload_changes_said(std::size_t excluded, const ConnectionTracker::Retagged& r) {
  std::string text;
  if (excluded) text += fmt::format("; {} excluded now ended", excluded);
  if (r.changed)
    text += fmt::format("; {} tagged otherwise now: ended and started again with {} new tag",
                        r.changed, r.changed == 1 ? "its" : "their");
  if (r.untagged) text += fmt::format("; {} no longer tagged: ended", r.untagged);
  if (r.started) text += fmt::format("; {} open and tagged now: started", r.started);
  return text;
}

std::string restarts_said(std::span<const FlowKey> keys, std::span<const FlowID> events) {
  if (keys.empty()) return {};
  const std::unordered_set<FlowKey, FlowKeyHash> wanted(keys.begin(), keys.end());
  const auto started =
      static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const FlowID& f) {
        return f.state == FlowState::kStart && wanted.count(FlowKey::of(f));
      }));
  // The rest: excluded or untagged by this configuration, or closed since the journal was read.
  return fmt::format(
      "; of the flow journal's {} to start again, {} started as this configuration tags them, {} "
      "not (excluded, untagged or closed meanwhile)",
      counted(keys.size(), "connection", "connections"), started, keys.size() - started);
}

ScannerPlugin::ScannerPlugin(const char* name, Context& ctx, ScannerOptions options,
                             scanner::Tagger tagger)
    : log_(get_logger(std::string("plugin.") + name)),
      name_(name),
      status_(ctx.status),
      shelf_(ctx.shelf),
      options_(options),
      tracker_(std::move(options.filter), options.report_existing, std::move(tagger)) {
  auto& m = ctx.metrics;
  prometheus::Labels l{{"plugin", name}};
  scans_ = &prometheus::BuildCounter()
                .Name("flowd_scans_total")
                .Help("Connection scans done by the scanner plugins (netlink, netstat, iperf)")
                .Register(m)
                .Add(l);
  errors_ = &prometheus::BuildCounter()
                 .Name("flowd_scan_errors_total")
                 .Help("Connection scans that failed (netlink or /proc errors)")
                 .Register(m)
                 .Add(l);
  connections_ = &prometheus::BuildGauge()
                      .Name("flowd_scan_connections")
                      .Help("TCP connections seen by the last scan")
                      .Register(m)
                      .Add(l);
  duration_ = &prometheus::BuildGauge()
                   .Name("flowd_scan_duration_seconds")
                   .Help("Wall time of the last connection scan")
                   .Register(m)
                   .Add(l);
  tracked_ = &prometheus::BuildGauge()
                  .Name("flowd_scan_tracked_connections")
                  .Help("Connections the scanner remembers between scans")
                  .Register(m)
                  .Add(l);
  // After a reload, the predecessor's tracker (ShelvedTracker): its statuses carry over and the
  // first scan is an ordinary one, which starts what opened since the predecessor's last scan.
  // Taken here, not in run(): the runtime destroys what is left on the shelf as soon as the
  // reload's components are started, possibly before this thread runs.
  if (shelf_)
    if (auto item = shelf_->take(reload_key()))
      if (auto* shelved = dynamic_cast<ShelvedTracker*>(item.get()); shelved && shelved->tracker) {
        tracker_.take_over(std::move(*shelved->tracker));
        followed_on_ = true;
      }
}

void ScannerPlugin::run(std::stop_token stop, Publisher& out) {
  StopFd stopfd(stop);
  int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (timer < 0) throw std::system_error(errno, std::generic_category(), "timerfd_create");
  itimerspec its{};
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(options_.interval);
  its.it_interval.tv_sec = secs.count();
  its.it_interval.tv_nsec = static_cast<long>((options_.interval - secs).count() * 1000000);
  its.it_value = its.it_interval;
  timerfd_settime(timer, 0, &its, nullptr);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    int err = errno;
    ::close(timer);
    throw std::system_error(err, std::generic_category(), "epoll_create1");
  }
  for (int fd : {stopfd.fd(), timer}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  // Without a predecessor's tracker (taken in the constructor; none: the predecessor was the kernel
  // plugin's BPF side), the flows it started come from the daemon's status and the rest is
  // adopted, as at a start.
  const bool followed_on = followed_on_;
  const std::size_t inherited = followed_on ? 0 : inherit_flows(tracker_, status_, name_);
  const std::size_t followed = tracker_.tracked();
  const std::vector<FlowKey> restarts =
      followed_on ? std::vector<FlowKey>{} : expect_restarts(tracker_, status_, name_);
  events_.clear();
  tracker_.end_excluded(Clock::now(), events_);  // what a reload's new filter excludes
  const std::size_t excluded = events_.size();
  ConnectionTracker::Retagged retagged;
  if (options_.retag)  // a rule or the fixed tag changed
    retagged =
        tracker_.retag(Clock::now(), events_, options_.retag_with ? &options_.retag_with : nullptr);
  out.publish(events_);
  scan_once(out);
  const std::string excluded_text = reload_changes_said(excluded, retagged);
  const std::string restarted_text = restarts_said(restarts, events_);
  if (!restarts.empty()) status_->restarts_started(name_);
  if (followed_on) {
    const std::size_t started =
        static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [](const FlowID& f) {
          return f.state == FlowState::kStart;
        }));
    log_->info(
        "scanning TCP connections every {} ms after a reload; {} followed on from before the "
        "reload; {} new started by the first scan{}",
        options_.interval.count(), counted(followed, "connection", "connections"), started,
        excluded_text);
  } else if (inherited) {
    // What the first scan added: what is tracked now, and the inherited flows it ended (closed
    // during the reload or while no flowd ran), less what was inherited.
    const std::size_t ended =
        static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [](const FlowID& f) {
          return f.state == FlowState::kEnd;
        }));
    const std::size_t now = tracker_.tracked() + ended;
    log_->info(
        "scanning TCP connections every {} ms; {} started before this plugin ran followed on (a "
        "reload, or the flow journal of a restart); {} more found by the first scan{}{}{}",
        options_.interval.count(), counted(inherited, "connection", "connections"),
        now - std::min(now, inherited),
        options_.report_existing ? " (reported)" : " (not reported)", excluded_text,
        restarted_text);
  } else if (options_.report_existing) {
    log_->info(
        "scanning TCP connections every {} ms; {} found at start, {} reported "
        "(report_existing){}",
        options_.interval.count(), counted(tracker_.tracked(), "connection", "connections"),
        tracker_.started(), restarted_text);
  } else {
    log_->info("scanning TCP connections every {} ms; {} adopted at start (not reported){}",
               options_.interval.count(),
               counted(tracker_.tracked() - tracker_.started(), "connection", "connections"),
               restarted_text);
  }
  while (!stop.stop_requested()) {
    epoll_event ev{};
    int n;
    {
      WaitingScope waiting;
      n = epoll_wait(ep, &ev, 1, -1);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(ep);
      ::close(timer);
      throw std::system_error(err, std::generic_category(), "epoll_wait");
    }
    if (n == 0 || ev.data.fd != timer) continue;
    std::uint64_t ticks;
    [[maybe_unused]] auto r = ::read(timer, &ticks, sizeof ticks);
    scan_once(out);
  }
  ::close(ep);
  ::close(timer);
  end_unless_succeeded(tracker_, successor_, out);
  // The successor follows on from what this instance knew (ShelvedTracker); unless it takes it,
  // the runtime destroys the item once the reload is applied.
  if (successor_.load() && shelf_) {
    auto item = std::make_unique<ShelvedTracker>();
    item->tracker.emplace(std::move(tracker_));
    shelf_->put(reload_key(), std::move(item));
  }
}

void end_unless_succeeded(ConnectionTracker& tracker, const std::atomic<bool>& successor,
                          Publisher& out) {
  if (successor.load()) return;  // the successor inherits them (inherit_flows)
  std::vector<FlowID> ends;
  tracker.end_all(Clock::now(), ends);
  out.publish(ends);
}

void ScannerPlugin::scan_once(Publisher& out) {
  auto t0 = std::chrono::steady_clock::now();
  auto now = Clock::now();
  events_.clear();
  std::size_t seen = 0;
  std::string error;
  bool ok = scan(
      [&](const scanner::Connection& c) {
        ++seen;
        tracker_.observe(c, now, events_);
      },
      error);
  scans_->Increment();
  if (!ok) {
    // A failed scan must not look like every connection vanished: no finish(), no end events.
    errors_->Increment();
    log_->warn("connection scan failed: {}", error);
    out.publish(events_);
    return;
  }
  tracker_.finish(now, events_);
  out.publish(events_);
  connections_->Set(static_cast<double>(seen));
  tracked_->Set(static_cast<double>(tracker_.tracked()));
  duration_->Set(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace flowd::scanner
