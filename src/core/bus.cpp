// SPDX-License-Identifier: Apache-2.0
#include "core/bus.hpp"

#include <algorithm>

namespace flowd {

namespace {

std::string endpoint(const IpAddress& a, std::uint16_t port) {
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), port)
                   : fmt::format("{}:{}", a.to_string(), port);
}

}  // namespace

// One per plugin, so that counting an event needs no lookup under a lock: the plugin's counters
// are resolved once per (origin, state) on first use. A series appears only once an event has it
// (each plugin has one origin, so the origin label adds no series, only the means to sum by it).
class Bus::PluginPublisher final : public Publisher {
 public:
  PluginPublisher(Bus& bus, const char* plugin, bool explicit_reports)
      : bus_(bus),
        plugin_(plugin),
        rank_(explicit_reports ? LocalFlowArbiter::Rank::kExplicit
                               : LocalFlowArbiter::Rank::kInferred),
        log_(get_logger("flow")) {}

  using Publisher::publish;
  void publish(std::span<const FlowID> flows) override {
    if (flows.empty()) return;
    // `flowd -d` promises one line per flow event: written here, once, whatever the plugin.
    if (log_->should_log(spdlog::level::debug))
      for (const auto& f : flows) log_event(f);
    std::array<std::uint64_t, kSlots> counts{};
    for (const auto& f : flows) ++counts[slot(f.origin, f.state)];
    for (std::size_t i = 0; i < kSlots; ++i)
      if (counts[i]) counter(i).Increment(static_cast<double>(counts[i]));
    // Each plugin has one origin: a local batch is arbitrated whole.
    if (flows.front().origin == FlowOrigin::kLocal)
      bus_.deliver_local(flows, plugin_, rank_);
    else
      bus_.deliver(flows, plugin_);
  }

 private:
  static constexpr std::size_t kStates = 3;
  static constexpr std::size_t kSlots = kFlowOrigins * kStates;
  static std::size_t slot(FlowOrigin o, FlowState s) {
    return static_cast<std::size_t>(o) * kStates + static_cast<std::size_t>(s);
  }

  prometheus::Counter& counter(std::size_t i) {
    auto* c = counters_[i].load(std::memory_order_acquire);
    if (c) return *c;
    // An origin's first event makes its three state series, as they always appeared together.
    // Two threads of one plugin (netflow workers) may both get here: Family::Add is thread-safe
    // and returns the same counter for the same labels, so either store is right.
    auto origin = static_cast<FlowOrigin>(i / kStates);
    for (FlowState s : {FlowState::kStart, FlowState::kEnd, FlowState::kOngoing})
      counters_[slot(origin, s)].store(
          &bus_.events_.Add({{"plugin", plugin_},
                             {"origin", std::string(to_string(origin))},
                             {"state", std::string(to_string(s))}}),
          std::memory_order_release);
    return *counters_[i].load(std::memory_order_acquire);
  }

  void log_event(const FlowID& f) const {
    log_->debug("{} {} {} {} -> {} exp {} act {} ({})", plugin_, to_string(f.state),
                to_string(f.protocol), endpoint(f.src, f.src_port), endpoint(f.dst, f.dst_port),
                f.experiment, f.activity, to_string(f.origin));
  }

  Bus& bus_;
  const char* plugin_;
  LocalFlowArbiter::Rank rank_;
  std::shared_ptr<spdlog::logger> log_;
  std::array<std::atomic<prometheus::Counter*>, kSlots> counters_{};
};

Bus::Bus(prometheus::Registry& metrics, StatusBoard* status, LocalFlowArbiter::StillOpen still_open)
    : events_(prometheus::BuildCounter()
                  .Name("flowd_flow_events_total")
                  .Help("Flow events published by plugins, by plugin, origin (local, remote, "
                        "observed) and state")
                  .Register(metrics)),
      dropped_(prometheus::BuildCounter()
                   .Name("flowd_bus_dropped_events_total")
                   .Help("Events dropped because a backend's queue was full, by backend")
                   .Register(metrics)),
      depth_(prometheus::BuildGauge()
                 .Name("flowd_bus_queue_depth")
                 .Help("Events waiting in a backend's queue")
                 .Register(metrics)),
      status_(status),
      arbiter_(std::move(still_open)),
      arbiter_events_(metrics, "flowd_local_flow_arbiter_events_total",
                      "Local flow events by what the arbiter of explicit and inferred reports of "
                      "one 5-tuple made of them: passed, held, dropped (of the plugins' events), "
                      "added (made at a hand-over)",
                      "outcome"),
      arbiter_evictions_(metrics, "flowd_local_flow_arbiter_evictions_total",
                         "5-tuples the local flow arbiter forgot at its capacity (65536), by the "
                         "reports live then: inferred, explicit, both",
                         "live"),
      subs_(std::make_shared<const std::vector<Sub>>()) {}

std::unique_ptr<Publisher> Bus::publisher(const char* plugin, bool explicit_reports) {
  return std::make_unique<PluginPublisher>(*this, plugin, explicit_reports);
}

void Bus::deliver_local(std::span<const FlowID> flows, const char* plugin,
                        LocalFlowArbiter::Rank rank) {
  std::lock_guard lock(local_mu_);
  arbitrated_.clear();
  LocalFlowArbiter::Tally tally;
  arbiter_.arbitrate(flows, plugin, rank, arbitrated_, &tally);
  count_arbitrated(tally);
  const bool explicit_rank = rank == LocalFlowArbiter::Rank::kExplicit;
  const bool ends = journal_ && journal_->active() &&
                    std::any_of(flows.begin(), flows.end(), [](const FlowID& f) {
                      return f.state == FlowState::kEnd && f.origin == FlowOrigin::kLocal;
                    });
  // The starts now (a start the restart finds journaled is ended by it, sent or not); the ends once
  // the backends have sent them (a kill before leaves the report live for the restart to end).
  if (journal_)
    journal_->record(flows, plugin, explicit_rank,
                     ends ? FlowJournal::Ends::kDefer : FlowJournal::Ends::kWrite);
  // Each event carries its own plugin now (the arbiter may add another plugin's).
  if (!arbitrated_.empty()) deliver(arbitrated_, nullptr);
  if (ends) {
    DeferredEnds d;
    d.subs = subs_.load();
    for (const auto& s : *d.subs) d.positions.push_back(s.queue->pushed());
    for (const auto& f : flows)
      if (f.state == FlowState::kEnd && f.origin == FlowOrigin::kLocal) d.ends.push_back(f);
    d.plugin = plugin;
    d.explicit_rank = explicit_rank;
    deferred_ends_ += d.ends.size();
    deferred_.push_back(std::move(d));
    any_deferred_.store(true, std::memory_order_release);
  }
  flush_deferred_ends(false);
}

void Bus::flush_deferred_ends(bool force) {
  while (!deferred_.empty()) {
    DeferredEnds& d = deferred_.front();
    bool processed = true;
    if (!force && deferred_ends_ <= kMaxDeferredEnds)
      for (std::size_t i = 0; processed && i < d.subs->size(); ++i)
        processed = (*d.subs)[i].queue->processed() >= d.positions[i];
    if (!processed) break;
    if (journal_) journal_->note_sent(d.ends, d.plugin, d.explicit_rank);
    deferred_ends_ -= d.ends.size();
    deferred_.pop_front();
  }
  if (journal_) journal_->write_sent();  // one write for all the batches flushed
  any_deferred_.store(!deferred_.empty(), std::memory_order_release);
}

void Bus::on_backend_progress() {
  if (!any_deferred_.load(std::memory_order_acquire)) return;
  // A plugin publishing holds the lock and flushes at the end of its batch: a backend never waits
  // for it (under a flood, every backend's pop contended with the publisher). The backend's next
  // pop, or the next batch, flushes what this one skipped.
  std::unique_lock lock(local_mu_, std::try_to_lock);
  if (lock.owns_lock()) flush_deferred_ends(false);
}

void Bus::settle_journal_ends() {
  std::lock_guard lock(local_mu_);
  flush_deferred_ends(true);
  // The backends drained their queues: what they processed of a cut-short delivery of recovered
  // ends leaves the journal; what they did not (dropped, or a backend that gave up) stays for the
  // next start.
  if (unsettled_recovered_) {
    unsettled_recovered_->report();
    unsettled_recovered_.reset();
  }
}

void Bus::count_arbitrated(const LocalFlowArbiter::Tally& tally) {
  for (std::size_t i = 0; i < LocalFlowArbiter::kOutcomes; ++i)
    if (tally.outcomes[i])
      arbiter_events_.add(static_cast<LocalFlowArbiter::Outcome>(i),
                          static_cast<double>(tally.outcomes[i]));
  std::uint64_t evicted = 0;
  for (std::size_t i = 0; i < LocalFlowArbiter::kLives; ++i) {
    if (!tally.evicted[i]) continue;
    arbiter_evictions_.add(static_cast<LocalFlowArbiter::Live>(i),
                           static_cast<double>(tally.evicted[i]));
    evicted += tally.evicted[i];
  }
  if (!evicted) return;
  arbiter_evicted_ += evicted;
  const FlowKey& k = *tally.first_evicted;
  limited_warn(*get_logger("core"), eviction_limiter_,
               "the local flow arbiter holds {} 5-tuples, its most: forgot the oldest ({} {} -> {}"
               "{}); its next events reach the backends unarbitrated, and another plugin's report "
               "of it is a second flow ({} forgotten since start; "
               "flowd_local_flow_arbiter_evictions_total)",
               LocalFlowArbiter::kCapacity, to_string(k.protocol), endpoint(k.src, k.src_port),
               endpoint(k.dst, k.dst_port),
               evicted > 1 ? fmt::format(", and {} more", evicted - 1) : std::string(),
               arbiter_evicted_);
}

std::vector<FlowID> Bus::live_reports(std::string_view plugin) {
  std::lock_guard lock(local_mu_);
  return arbiter_.live_reports(plugin);
}

void Bus::plugin_removed(const char* plugin) {
  std::lock_guard lock(local_mu_);
  arbitrated_.clear();
  arbiter_.forget(plugin, arbitrated_);
  if (arbitrated_.empty()) return;
  if (journal_) {
    // Its explicit reports ended here (the restarts are other plugins' reports, live already).
    std::vector<FlowID> ends;
    for (const auto& f : arbitrated_)
      if (f.state == FlowState::kEnd && std::string_view(f.plugin) == plugin) ends.push_back(f);
    journal_->record(ends, plugin, true);
  }
  const auto ended = std::count_if(arbitrated_.begin(), arbitrated_.end(),
                                   [](const FlowID& f) { return f.state == FlowState::kEnd; });
  get_logger("core")->info(
      "plugin {} removed: the {} flow{} it reported end{} with it ({} handed back to a connection "
      "plugin)",
      plugin, ended, ended == 1 ? "" : "s", ended == 1 ? "s" : "", arbitrated_.size() - ended);
  // Every one of them made by the arbiter, nobody's published event.
  arbiter_events_.add(LocalFlowArbiter::Outcome::kAdded, static_cast<double>(arbitrated_.size()));
  deliver(arbitrated_, nullptr);
}

void Bus::set_journal(FlowJournal* journal) {
  std::lock_guard lock(local_mu_);
  journal_ = journal;
}

void Bus::restore(const FlowID& start, LocalFlowArbiter::Rank rank) {
  std::lock_guard lock(local_mu_);
  arbitrated_.clear();
  arbiter_.arbitrate({&start, 1}, start.plugin, rank, arbitrated_);
  // What the backends would have seen is what the status board lists; the backends saw it
  // already, from the previous flowd.
  if (status_ && !arbitrated_.empty()) status_->record(arbitrated_, nullptr);
  if (journal_)
    journal_->record({&start, 1}, start.plugin, rank == LocalFlowArbiter::Rank::kExplicit);
}

void Bus::publish_recovered_ends(std::span<const FlowID> ends, std::stop_token stop,
                                 const std::function<void(std::size_t)>& processed,
                                 std::chrono::milliseconds stall, std::chrono::milliseconds limit) {
  if (ends.empty()) return;
  {
    std::lock_guard lock(local_mu_);
    arbiter_.note_ended(ends);
    arbiter_events_.add(LocalFlowArbiter::Outcome::kAdded, static_cast<double>(ends.size()));
  }
  // Out of the lock: no plugin publishes yet, and a backend's wait must not hold up a reader of
  // the arbiter (the status board's live reports).
  deliver_recovered(ends, "ends of flows the previous flowd left live", stop, processed, stall,
                    limit);
}

std::size_t Bus::RecoveredDelivery::done_by(std::size_t i) const {
  const std::uint64_t p = (*subs)[i].queue->processed();
  return static_cast<std::size_t>(
      std::min<std::uint64_t>(accepted[i], p > base[i] ? p - base[i] : 0));
}

void Bus::RecoveredDelivery::report() {
  std::size_t prefix = size;
  for (std::size_t i = 0; i < subs->size(); ++i) prefix = std::min(prefix, done_by(i));
  if (prefix > reported && processed) processed(prefix);
  reported = std::max(reported, prefix);
}

void Bus::deliver_recovered(std::span<const FlowID> flows, const char* what, std::stop_token stop,
                            const std::function<void(std::size_t)>& processed,
                            std::chrono::milliseconds stall, std::chrono::milliseconds limit) {
  if (flows.empty()) return;
  published_.fetch_add(flows.size(), std::memory_order_relaxed);
  if (status_) status_->record(flows, nullptr);
  // Where each queue stood, and how many of `flows` it took: what its backend has processed of
  // them is its processed() past `base`, up to `accepted`. The first `reported` of `flows` every
  // backend has processed (or was never given) are said to `processed` as that grows, so that the
  // flow journal keeps no more than what is still on its way.
  RecoveredDelivery d;
  d.subs = subs_.load();
  const std::size_t n = d.subs->size();
  const auto& subs = d.subs;
  d.base.resize(n);
  d.accepted.assign(n, 0);
  d.size = flows.size();
  d.processed = processed;
  for (std::size_t i = 0; i < n; ++i) d.base[i] = (*subs)[i].queue->pushed();
  // Cut short (a stop, a backend that takes nothing): what the backends process of the rest until
  // they stop is said at settle_journal_ends(), after their drain, not sent again by the next
  // start (try15k A2: a SIGTERM during the delivery sent 65,600 of 100,000 ends twice).
  struct Keep {
    Bus& bus;
    RecoveredDelivery& d;
    ~Keep() {
      if (d.processed && d.reported < d.size) bus.unsettled_recovered_ = std::move(d);
    }
  } keep{*this, d};
  // The backends are given the ends in step: each time, as many as every queue still taking has
  // room for; then the one with the least room is waited on until its backend frees some (a pop
  // wakes the wait: no polling): the slowest sets the pace. In step, a stop leaves every queue with
  // the same ends, which the drain sends and the settle journals: none sent twice by the next start
  // (one backend's queue ahead of another's was: try15k A2).
  std::vector<bool> taking(n, true);
  std::size_t given = 0;
  const auto until = std::chrono::steady_clock::now() + limit;
  // Backend i takes no more: the rest is not waited for, counted and logged.
  const auto give_up = [&](std::size_t i) {
    taking[i] = false;
    const Sub& s = (*subs)[i];
    const std::size_t refused = flows.size() - d.accepted[i];
    if (stop.stop_requested() && processed) {
      // Not lost: the journal keeps them for the next start. Counted as drops, a SIGTERM during a
      // restart added 300,000 to flowd_bus_dropped_events_total, and fired its alerts (try15l).
      if (refused)
        get_logger("core")->info(
            "backend {}: {} of the {} {} not given to it before flowd stopped: they stay in the "
            "flow journal, the next start sends them",
            s.backend, refused, flows.size(), what);
      return;
    }
    s.dropped->Increment(static_cast<double>(refused));
    auto total = dropped_total_.fetch_add(refused, std::memory_order_relaxed) + refused;
    const bool closed = s.queue->closed();
    get_logger("core")->warn(
        "backend {}'s queue is {}: {} of the {} {} (flow journal) dropped{} ({} dropped in all "
        "since start, all backends; flowd_bus_dropped_events_total){}",
        s.backend, closed ? "closed" : "full", refused, flows.size(), what,
        closed                  ? std::string()
        : stop.stop_requested() ? std::string(", flowd is stopping")
        : std::chrono::steady_clock::now() >= until
            ? fmt::format(", not taken within {:g} s", static_cast<double>(limit.count()) / 1000)
            : fmt::format(", its backend took none for {:g} s",
                          static_cast<double>(stall.count()) / 1000),
        total, processed ? "; they stay in the flow journal: the next start sends them" : "");
  };
  while (given < flows.size()) {
    std::size_t room = flows.size() - given, tightest = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!taking[i]) continue;
      const Sub& s = (*subs)[i];
      const std::size_t free = s.queue->capacity() - std::min(s.queue->capacity(), s.queue->size());
      if (tightest == n || free < room) {
        room = std::min(room, free);
        tightest = i;
      }
    }
    if (tightest == n) break;  // no backend takes any more
    if (room > 0) {
      for (std::size_t i = 0; i < n; ++i) {
        if (!taking[i]) continue;
        const std::size_t took = (*subs)[i].queue->push_batch(flows.subspan(given, room), nullptr);
        d.accepted[i] += took;
        if (took < room) give_up(i);  // closed meanwhile (room only grows: nobody else pushes)
      }
      given += room;
      d.report();
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now < until && (*subs)[tightest].queue->wait_for_room(stop, std::min(until, now + stall)))
      continue;
    // Stopped: no backend is given more (in step). Closed, or a backend that reads nothing: the
    // rest is not waited for, the others go on.
    if (stop.stop_requested()) {
      for (std::size_t i = 0; i < n; ++i)
        if (taking[i]) give_up(i);
      break;
    }
    give_up(tightest);
  }
  d.report();
  if (!processed) return;
  // All given out: the journal forgets them only once every backend has processed them (sent the
  // ends to the collector, taken the marks out), so that a kill meanwhile leaves them for the next
  // start instead of losing them (try15i A).
  std::size_t target = flows.size();
  for (std::size_t i = 0; i < n; ++i) target = std::min(target, d.accepted[i]);
  while (d.reported < target) {
    std::size_t slowest = 0;
    while (slowest < n && d.done_by(slowest) >= target) ++slowest;
    if (slowest == n) break;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until || !(*subs)[slowest].queue->wait_until_processed(
                            d.base[slowest] + target, stop, std::min(until, now + stall))) {
      d.report();
      get_logger("core")->warn(
          "backend {} has not processed {} of the {} {} (flow journal){}: {}",
          (*subs)[slowest].backend, target - std::min(target, d.done_by(slowest)), flows.size(),
          what, stop.stop_requested() ? ", flowd is stopping" : "",
          "what it processes of them before flowd stops leaves the flow journal then, the rest is "
          "sent again by the next start");
      return;
    }
    d.report();
  }
  d.report();
}

void Bus::restarts_taken(std::string_view plugin) {
  std::lock_guard lock(local_mu_);
  if (journal_) journal_->restarts_taken(plugin);
}

int Bus::journal_stale_fd() {
  std::lock_guard lock(local_mu_);
  return journal_ && journal_->active() ? journal_->stale_fd() : -1;
}

bool Bus::retry_journal() {
  std::lock_guard lock(local_mu_);
  if (!journal_ || !journal_->stale()) return false;
  journal_->repair_if_due();
  return journal_->stale();
}

void Bus::stopping() {
  std::lock_guard lock(local_mu_);
  if (journal_) journal_->stopping();
}

void Bus::deliver(std::span<const FlowID> flows, const char* plugin) {
  published_.fetch_add(flows.size(), std::memory_order_relaxed);
  if (status_) status_->record(flows, plugin);  // null plugin: each event's own
  auto subs = subs_.load();
  for (const auto& s : *subs) {
    auto rest = flows.subspan(s.queue->push_batch(flows, plugin));
    // Closed once is closed for good: a refusal by a queue closed now is taken as the close's (one
    // that was full just before is the same backend going away).
    bool closed = !rest.empty() && s.queue->closed();
    // A closed queue is a backend a reload (or the stop) is stopping: the subscribers were swapped
    // before it was closed, so this batch read the set just before. Its events go to the
    // backend's successor, which a reload subscribes under the same name before closing the old
    // queue (it reads them after its predecessor stopped), or nowhere when the backend is removed:
    // then they are not wanted, not dropped. Each closed queue takes a reload: a few turns at most.
    std::shared_ptr<EventQueue> queue = s.queue;
    prometheus::Counter* dropped = s.dropped;
    for (int turn = 0; closed && !rest.empty() && turn < 8; ++turn) {
      auto now = subs_.load();
      auto next = std::find_if(now->begin(), now->end(),
                               [&](const Sub& n) { return n.backend == s.backend; });
      if (next == now->end()) {
        rest = {};  // removed: nothing wants these events
        break;
      }
      if (next->queue == queue) break;  // closed, yet still subscribed: nobody reads them
      queue = next->queue;
      dropped = next->dropped;
      rest = rest.subspan(queue->push_batch(rest, plugin));
      closed = !rest.empty() && queue->closed();
    }
    if (rest.empty()) continue;
    const std::size_t refused = rest.size();
    dropped->Increment(static_cast<double>(refused));
    auto total = dropped_total_.fetch_add(refused, std::memory_order_relaxed) + refused;
    limited_warn(*get_logger("core"), drop_limiter_,
                 "backend {}'s queue is {}: {} event(s) from {} dropped ({} dropped in all "
                 "since start, all backends; flowd_bus_dropped_events_total{})",
                 s.backend, closed ? "closed" : "full", refused,
                 plugin ? plugin : flows.front().plugin, total,
                 closed ? "" : "; [flowd] queue_size");
  }
}

std::shared_ptr<EventQueue> Bus::make_queue(const std::string& backend, std::size_t capacity) {
  auto q = std::make_shared<EventQueue>(capacity);
  q->set_depth_gauge(&depth_.Add({{"backend", backend}}));
  q->set_progress_hook([this] { on_backend_progress(); });
  dropped_series(backend);
  return q;
}

void Bus::count_dropped(const std::string& backend, std::uint64_t n) {
  if (n == 0) return;
  dropped_series(backend).Increment(static_cast<double>(n));
  dropped_total_.fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t Bus::dropped_for(const std::string& backend) const {
  // Family::Add returns the existing series (the family is not changed for a known label set).
  return static_cast<std::uint64_t>(dropped_.Add({{"backend", backend}}).Value());
}

void Bus::set_subscribers(std::vector<Subscriber> subs) {
  auto v = std::make_shared<std::vector<Sub>>();
  for (auto& s : subs) v->push_back(Sub{s.queue, &dropped_series(s.backend), s.backend});
  subs_.store(std::move(v));
}

prometheus::Counter& Bus::dropped_series(const std::string& backend) {
  std::lock_guard lock(series_mu_);
  auto& c = dropped_series_[backend];
  if (!c) c = &dropped_.Add({{"backend", backend}});
  return *c;
}

std::vector<std::pair<std::string, std::uint64_t>> Bus::dropped_by_backend() const {
  std::lock_guard lock(series_mu_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const auto& [name, c] : dropped_series_)
    out.emplace_back(name, static_cast<std::uint64_t>(c->Value()));
  return out;
}

}  // namespace flowd
