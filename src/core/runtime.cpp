// SPDX-License-Identifier: Apache-2.0
#include "core/runtime.hpp"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <system_error>
#include <unordered_map>

#include "core/connection_check.hpp"
#include "flowd/log.hpp"

namespace flowd {
namespace {

std::string system_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "-";
  return buf[0] ? buf : "-";
}

}  // namespace

Runtime::Runtime(prometheus::Registry& metrics, MetricsHub& hub, RegistryHandle& registry)
    : status_(registry),
      ctx_{registry, metrics,  hub,      system_hostname(), "", &heartbeats_, stopping_.get_token(),
           &shelf_,  &status_, &records_},
      journal_(metrics),
      // A hand-back is made only to a connection the kernel says is still open (try15d D6).
      bus_(metrics, &status_,
           [check = std::make_shared<OpenConnectionCheck>()](const FlowID& start) {
             return (*check)(start);
           }),
      failure_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (failure_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  status_.set_bus_counts({[this] { return bus_.published(); }, [this] { return bus_.dropped(); },
                          [this](const std::string& b) { return bus_.dropped_for(b); },
                          [this](std::string_view p) { return bus_.live_reports(p); },
                          [this](std::string_view p) { bus_.restarts_taken(p); }});
}

Runtime::~Runtime() {
  stop_all();
  ::close(failure_fd_);
}

void Runtime::report_failure(const std::string& who, const std::string& why) {
  {
    std::lock_guard lock(failure_mu_);
    if (failure_.empty()) failure_ = who + ": " + why;
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(failure_fd_, &one, sizeof one);
}

std::string Runtime::failure() const {
  std::lock_guard lock(failure_mu_);
  return failure_;
}

void Runtime::stop_plugin(RunningPlugin& p, bool successor) {
  p.impl->before_stop(successor);
  p.thread.request_stop();
  if (p.thread.joinable()) p.thread.join();
  p.impl->stop();
  get_logger("core")->info("stopped plugin {}", p.info->name);
}

void Runtime::stop_backend(RunningBackend& b) {
  b.queue->close();
  if (b.thread.joinable()) b.thread.join();
  b.impl->stop();
  get_logger("core")->info("stopped backend {}", b.info->name);
}

void Runtime::publish_subscribers() {
  std::vector<Bus::Subscriber> subs;
  for (auto& b : backends_) subs.push_back({std::string(b.info->name), b.queue});
  for (auto& [name, q] : successor_queues_) subs.push_back({name, q});
  bus_.set_subscribers(std::move(subs));
  std::vector<StatusBoard::ComponentRow> rows;
  for (auto& p : plugins_) rows.push_back({"plugin", std::string(p.info->name), nullptr});
  for (auto& b : backends_) rows.push_back({"backend", std::string(b.info->name), b.queue});
  status_.set_components(std::move(rows));
}

Runtime::Recovered Runtime::recover_flows(const Config& c) {
  JournalReplay previous;
  if (!journal_.open(c.core.get("work_dir"), previous)) return {};
  bus_.set_journal(&journal_);
  if (previous.live.empty() && previous.stopped.empty()) return {};
  OpenConnectionCheck still_open;
  Recovered out;
  const TimePoint now = Clock::now();
  const auto plugin_of = [&](const JournalReport& r) {
    return std::find_if(c.plugins.begin(), c.plugins.end(), [&](const PluginConfig& p) {
      return p.info->name == r.plugin && p.info->explicit_reports == r.explicit_rank;
    });
  };
  // A clean stop ended the connection plugins' flows; those open again now start again, at their
  // plugin's first dump (before, the plugin adopted them silently: unreported and unmarked until
  // they closed).
  // Those of plugins this configuration does not run are not started again, said in the log (the
  // stop's ends reached the backends; nothing of theirs is live).
  std::map<std::string, std::size_t> unconfigured;
  for (const auto& r : previous.stopped) {
    FlowID f = r.start;
    f.origin = FlowOrigin::kLocal;
    const auto pc = plugin_of(r);
    if (pc == c.plugins.end()) {
      ++unconfigured[r.plugin];
      continue;
    }
    std::uint64_t cookie = 0;
    if (f.protocol != Protocol::kTcp || !still_open(f, &cookie)) continue;
    f.plugin = pc->info->name.data();
    f.start_time = now;
    f.socket_cookie = cookie;  // the socket open now (maybe a new one on the 4-tuple)
    out.restarts.push_back(std::move(f));
  }
  if (!out.restarts.empty())
    get_logger("core")->info(
        "{} the previous flowd{} ended at its stop {} open: started again by {} plugin's first "
        "dump, as this configuration tags {} (flow journal {})",
        out.restarts.size() == 1 ? std::string("1 connection")
                                 : fmt::format("{} connections", out.restarts.size()),
        previous.pid ? fmt::format(" (pid {})", previous.pid) : std::string(),
        out.restarts.size() == 1 ? "is still" : "are still",
        out.restarts.size() == 1 ? "its" : "their", out.restarts.size() == 1 ? "it" : "them",
        journal_.path());
  if (!unconfigured.empty()) {
    std::size_t n = 0, listed = 0;
    std::string which;  // the first few plugins (the journal's names are not trusted to be few)
    for (const auto& [plugin, count] : unconfigured) {
      n += count;
      if (which.size() >= 80) continue;
      which += fmt::format("{}{} {}", which.empty() ? "" : ", ", count, plugin);
      ++listed;
    }
    if (listed < unconfigured.size()) which += ", ...";
    get_logger("core")->info(
        "{} the previous flowd ended at its stop {} of plugins this configuration does not run "
        "({}): not started again, nor by a later start with their plugin, which adopts them "
        "unreported as any start without a journal does (flow journal {})",
        n == 1 ? std::string("1 connection") : fmt::format("{} connections", n),
        n == 1 ? "is" : "are", which, journal_.path());
  }
  if (previous.live.empty()) {
    journal_.count_recovered(0, 0, out.restarts.size());
    return out;
  }
  std::vector<FlowID>& ends = out.ends;
  std::size_t followed = 0, closed = 0, gone = 0, covered = 0, handed_back = 0, reused = 0;
  // A connection with a live explicit report (np_api, api) hides its inferred one from the
  // backends (the arbiter ended it at the tool's start, or held its start): only the explicit
  // report's end may go out (try15g 1). The explicit reports are settled first; an inferred one
  // behind a report that ends now is handed back if open, as a reload removing np_api does.
  enum class Explicit : std::uint8_t { kFollowed, kEnded };
  std::unordered_map<FlowKey, Explicit, FlowKeyHash> explicit_reports;
  const auto settle = [&](const JournalReport& r) {
    FlowID f = r.start;
    f.origin = FlowOrigin::kLocal;
    const auto pc = plugin_of(r);
    // UDP has no connection state to ask: kept, as the marker keeps UDP flows after a crash.
    std::uint64_t cookie = 0;
    const bool open = f.protocol == Protocol::kUdp || still_open(f, &cookie);
    // Open on another socket than the one journaled (both cookies known): the connection closed
    // while no flowd ran and a new one took its 4-tuple (try15g 3). Before, the new one was taken
    // for it: the old flow's end came at the new one's close, and the new one had no start.
    const bool other_socket =
        open && f.socket_cookie != 0 && cookie != 0 && cookie != f.socket_cookie;
    const auto key = LocalFlowArbiter::key_of(f);
    if (!r.explicit_rank)
      if (auto it = explicit_reports.find(key); it != explicit_reports.end()) {
        // Nothing of it reached the backends (the tool's report hid it): the report stands for
        // the socket open now.
        if (other_socket) f.socket_cookie = cookie;
        if (it->second == Explicit::kEnded && open && pc != c.plugins.end()) {
          f.plugin = pc->info->name.data();
          f.start_time = now;
          out.restarts.push_back(std::move(f));
          ++handed_back;
        } else if (it->second == Explicit::kFollowed && open && pc != c.plugins.end()) {
          f.plugin = pc->info->name.data();
          if (other_socket) f.start_time = now;
          bus_.restore(f, LocalFlowArbiter::Rank::kInferred);  // held behind the tool's report
          ++followed;
        } else {
          ++covered;  // nothing of it reached the backends that an end would close
        }
        return;
      }
    if (pc != c.plugins.end() && open && !other_socket) {
      f.plugin = pc->info->name.data();
      bus_.restore(f, r.explicit_rank ? LocalFlowArbiter::Rank::kExplicit
                                      : LocalFlowArbiter::Rank::kInferred);
      if (r.explicit_rank) explicit_reports[key] = Explicit::kFollowed;
      ++followed;
      return;
    }
    if (r.explicit_rank) explicit_reports[key] = Explicit::kEnded;
    if (other_socket && pc != c.plugins.end()) {
      // Its plugin would adopt the new socket silently (it is older than the plugin): started
      // now instead, after the old one's end (publish_recovered_ends goes first), as a report
      // handed back is.
      ++reused;
      FlowID renewed = f;
      renewed.plugin = pc->info->name.data();
      renewed.start_time = now;
      renewed.socket_cookie = cookie;
      out.restarts.push_back(std::move(renewed));
    } else {
      ++(open ? gone : closed);
    }
    f.plugin = FlowJournal::static_name(r.plugin);
    f.state = FlowState::kEnd;
    f.end_time = f.start_time ? std::max(*f.start_time, now) : now;
    ends.push_back(std::move(f));
    out.ends_explicit.push_back(r.explicit_rank ? 1 : 0);
  };
  for (const auto& r : previous.live)
    if (r.explicit_rank) settle(r);
  for (const auto& r : previous.live)
    if (!r.explicit_rank) settle(r);
  // The new connections on reused 4-tuples are no report of the journal's: not counted restarted.
  journal_.count_recovered(followed, ends.size(), out.restarts.size() - reused);
  // A clean stop leaves the tools' flows live on purpose (they outlive a restart): said at info
  // level. Only a flowd that did not stop cleanly (kill -9, a crash) is worth a warning.
  get_logger("core")->log(
      previous.stopped_cleanly ? spdlog::level::info : spdlog::level::warn,
      "the previous flowd{} {} {} (flow journal {}): {} still open, followed "
      "on by {} plugins; {} closed while no flowd ran{}{}, ended now{}{}",
      previous.pid ? fmt::format(" (pid {})", previous.pid) : std::string(),
      previous.stopped_cleanly ? "stopped cleanly and left live" : "stopped without ending",
      previous.live.size() == 1 ? std::string("1 flow")
                                : fmt::format("{} flows", previous.live.size()),
      journal_.path(), followed, followed == 1 ? "its" : "their", closed,
      reused ? fmt::format(" and {} whose 4-tuple a new connection took meanwhile (another socket "
                           "cookie: the new one is started now)",
                           reused)
             : std::string(),
      gone ? fmt::format(" and {} of plugins no longer configured", gone) : std::string(),
      handed_back
          ? fmt::format("; {} handed back to their connection plugin (started again)", handed_back)
          : std::string(),
      covered
          ? fmt::format("; {} a tool's report covered dropped (the backends saw no more of them)",
                        covered)
          : std::string());
  return out;
}

void Runtime::apply(const Config& c) {
  auto log = get_logger("core");
  // Components read it from their own threads: a marker missing while this runs may be being
  // replaced (the kernel plugin then keeps marking the map it has until the reload is done).
  struct Reloading {
    StatusBoard& status;
    explicit Reloading(StatusBoard& s) : status(s) { status.set_reloading(true); }
    ~Reloading() { status.set_reloading(false); }
  } reloading(status_);
  std::string fingerprint = fmt::format("{}|{}|{}", c.core.get("hostname"), c.core.get("work_dir"),
                                        c.core.get("queue_size"));
  bool core_changed = fingerprint != core_fingerprint_;
  // The daemon's start (not a reload): what the previous flowd left live, before anything runs.
  const bool first = !started_;
  Recovered recovered;
  if (first) recovered = recover_flows(c);
  // What a killed flowd's backends that this one does not run left behind (the marker's filters).
  if (first)
    for (const auto* info : c.unlisted_backends)
      if (info->clean_up_unlisted) info->clean_up_unlisted(c.core.get("work_dir"));
  auto queue_size = static_cast<std::size_t>(c.core.get_int("queue_size"));

  // Plugins first, so nothing is published to a backend that is going away.
  std::vector<RunningPlugin> kept_plugins;
  for (auto& p : plugins_) {
    bool keep = !core_changed &&
                std::any_of(c.plugins.begin(), c.plugins.end(), [&](const PluginConfig& pc) {
                  return pc.info == p.info && pc.section == p.section;
                });
    if (keep) {
      kept_plugins.push_back(std::move(p));
      continue;
    }
    const bool successor = std::any_of(c.plugins.begin(), c.plugins.end(),
                                       [&](const PluginConfig& pc) { return pc.info == p.info; });
    stop_plugin(p, successor);
    if (!successor) bus_.plugin_removed(p.info->name.data());
  }
  plugins_ = std::move(kept_plugins);

  std::vector<RunningBackend> kept_backends, gone_backends;
  for (auto& b : backends_) {
    bool keep = !core_changed &&
                std::any_of(c.backends.begin(), c.backends.end(), [&](const BackendConfig& bc) {
                  return bc.info == b.info && bc.section == b.section;
                });
    (keep ? kept_backends : gone_backends).push_back(std::move(b));
  }
  backends_ = std::move(kept_backends);
  for (auto& b : gone_backends) {
    std::string name(b.info->name);
    bool replaced = std::any_of(c.backends.begin(), c.backends.end(),
                                [&](const BackendConfig& bc) { return bc.info == b.info; });
    if (replaced && !successor_queues_.contains(name))
      successor_queues_[name] = bus_.make_queue(name, queue_size);
  }
  for (auto& b : backends_) b.impl->reloaded();
  publish_subscribers();
  for (auto& b : gone_backends) stop_backend(b);
  gone_backends.clear();

  if (core_changed) {
    ctx_.hostname = c.core.get("hostname").empty() ? system_hostname() : c.core.get("hostname");
    // The flow journal stays where this flowd started (its lock held there); a start after a kill
    // reads the new work_dir's: said now, while something can be done (try16c F7).
    if (!first && c.core.get("work_dir") != ctx_.work_dir)
      log->warn(
          "work_dir changed from '{}' to '{}': the flow journal stays in the old one while this "
          "flowd runs{}",
          ctx_.work_dir, c.core.get("work_dir"),
          journal_.active()
              ? fmt::format(" ({}); the next start reads the new one's, so the flows this flowd "
                            "leaves live (at a stop or a kill) are neither ended nor followed by "
                            "it, unless that file is moved into '{}' while no flowd runs",
                            journal_.path(), c.core.get("work_dir"))
              : std::string());
    ctx_.work_dir = c.core.get("work_dir");
  }

  for (const auto& bc : c.backends) {
    if (std::any_of(backends_.begin(), backends_.end(), [&](auto& b) { return b.info == bc.info; }))
      continue;
    RunningBackend b{bc.info, bc.section, queue_size, bc.info->create(bc.section, ctx_),
                     nullptr, nullptr,    {}};
    b.impl->start();
    if (auto it = successor_queues_.find(std::string(bc.info->name));
        it != successor_queues_.end()) {
      b.queue =
          std::move(it->second);  // holds what was published while the previous instance stopped
      successor_queues_.erase(it);
    } else {
      b.queue = bus_.make_queue(std::string(bc.info->name), queue_size);
    }
    std::string who = "backend." + std::string(bc.info->name);
    b.heartbeat = heartbeats_.add(who);
    b.thread = supervised(who, b.heartbeat, [impl = b.impl.get(), q = b.queue](std::stop_token st) {
      impl->run(st, *q);
      return q->closed();  // a closed queue is a normal end
    });
    backends_.push_back(std::move(b));
    log->info("started backend {}", bc.info->name);
  }
  publish_subscribers();
  if (first) {
    // The backends run: the flows that closed while no flowd ran end now, before any plugin
    // publishes (one of them may report the same connection again).
    // More of them than a queue holds wait for room (bounded; a stop cuts the wait short).
    // Their reports stay in the journal (its rewrite below keeps them) until every backend has
    // processed their ends: a kill (or a stop) before leaves them to the next start (try15i A).
    journal_.record_recovered(recovered.ends, recovered.ends_explicit, false);
    // And the connections to start again until their plugins take them (try15j D1).
    journal_.keep_restarts(recovered.restarts);
    journal_.start_writing();
    // Kept until they are all journaled: a delivery a stop cuts short says the rest at the stop,
    // once the backends drained them (Bus::settle_journal_ends, try15k A2).
    recovered_ends_ = std::move(recovered.ends);
    recovered_explicit_ = std::move(recovered.ends_explicit);
    bus_.publish_recovered_ends(recovered_ends_, stopping_.get_token(), [this](std::size_t done) {
      journal_.record_recovered(
          std::span(recovered_ends_).subspan(recovered_journaled_, done - recovered_journaled_),
          std::span(recovered_explicit_).subspan(recovered_journaled_, done - recovered_journaled_),
          true);
      recovered_journaled_ = done;
    });
    if (recovered_journaled_ == recovered_ends_.size()) release_recovered_ends();
    // The connections open again are started by their plugins' first dumps, as their
    // configuration of now tags them or leaves them out (try15h D4), not with the journal's tags.
    status_.set_restarts(recovered.restarts);
    started_ = true;
  }

  for (const auto& pc : c.plugins) {
    if (std::any_of(plugins_.begin(), plugins_.end(), [&](auto& p) { return p.info == pc.info; }))
      continue;
    RunningPlugin p{pc.info,
                    pc.section,
                    pc.info->create(pc.section, ctx_, pc.info->name.data()),
                    bus_.publisher(pc.info->name.data(), pc.info->explicit_reports),
                    nullptr,
                    {}};
    p.impl->start();
    std::string who = "plugin." + std::string(pc.info->name);
    p.heartbeat = heartbeats_.add(who);
    p.thread =
        supervised(who, p.heartbeat, [impl = p.impl.get(), out = p.out.get()](std::stop_token st) {
          impl->run(st, *out);
          return false;
        });
    plugins_.push_back(std::move(p));
    log->info("started plugin {}", pc.info->name);
  }
  publish_subscribers();  // the status lists the plugins just started too
  core_fingerprint_ = fingerprint;
  // What a stopped component left for a successor that this configuration does not have.
  shelf_.clear();
  records_.settle();
}

void Runtime::release_recovered_ends() {
  std::vector<FlowID>().swap(recovered_ends_);
  std::vector<std::uint8_t>().swap(recovered_explicit_);
  recovered_journaled_ = 0;
}

void Runtime::stop_all() {
  bus_.stopping();  // the connection plugins' ends that follow are the stop's (flow journal)
  for (auto& p : plugins_) stop_plugin(p, false);
  plugins_.clear();
  shelf_.clear();  // no successor comes: the pipe np_api kept is removed now
  // Backends drain what the plugins already published.
  bus_.set_subscribers({});
  for (auto& b : backends_) stop_backend(b);
  backends_.clear();
  bus_.settle_journal_ends();  // what the backends processed of the stop's ends, and the rest
  release_recovered_ends();
  records_.settle();
  status_.set_components({});
  // And what the backends left at their stop (the marker's filters, if its stop was not told the
  // daemon stops): cleaned up now, not when the Runtime is destroyed.
  shelf_.clear();
  // A reload that failed left queues whose backend never started: nobody reads them.
  for (auto& [name, q] : successor_queues_) bus_.count_dropped(name, q->size());
  successor_queues_.clear();
}

std::string Runtime::event_totals() const {
  // By backend: one event refused by two full queues is two drops, not two lost events.
  std::string by;
  for (const auto& [name, n] : bus_.dropped_by_backend())
    by += fmt::format("{}{} {}", by.empty() ? "" : ", ", name, n);
  return fmt::format("events={} dropped={} ({})", bus_.published(), bus_.dropped(), by);
}

std::string Runtime::summary() const {
  std::vector<std::string_view> p, b;
  for (auto& x : plugins_) p.push_back(x.info->name);
  for (auto& x : backends_) b.push_back(x.info->name);
  return fmt::format("plugins={} backends={} events={} dropped={}", fmt::join(p, ","),
                     fmt::join(b, ","), bus_.published(), bus_.dropped());
}

}  // namespace flowd
