// SPDX-License-Identifier: Apache-2.0
// The event bus: every event from any plugin is copied into every backend's bounded queue.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "core/flow_journal.hpp"
#include "core/local_flow_arbiter.hpp"
#include "core/status_board.hpp"
#include "flowd/component.hpp"
#include "flowd/event_queue.hpp"
#include "flowd/log.hpp"
#include "flowd/reason_counters.hpp"

namespace flowd {

class Bus {
 public:
  struct Subscriber {
    std::string backend;
    std::shared_ptr<EventQueue> queue;
  };

  // `status`, if given, sees every batch published (the active flows of GET /v1/flows).
  // `still_open`: asked before the arbiter hands a connection back to an inferred report
  // (core/connection_check.hpp; the daemon's bus asks the kernel); unset, it always does.
  explicit Bus(prometheus::Registry& metrics, StatusBoard* status = nullptr,
               LocalFlowArbiter::StillOpen still_open = {});
  // The handle one plugin publishes through: it names the events after `plugin` (a static name)
  // and counts them in flowd_flow_events_total{plugin,origin,state}. Must not outlive the bus.
  // Its local events pass through the bus's LocalFlowArbiter with `explicit_reports` as rank.
  std::unique_ptr<Publisher> publisher(const char* plugin, bool explicit_reports = false);
  // Swapped atomically: publishers never wait for a reload.
  void set_subscribers(std::vector<Subscriber> subs);
  std::shared_ptr<EventQueue> make_queue(const std::string& backend, std::size_t capacity);
  // Counts `n` events as dropped for `backend`: events left in a queue no backend will read.
  void count_dropped(const std::string& backend, std::uint64_t n);
  std::uint64_t published() const { return published_.load(std::memory_order_relaxed); }
  // Event copies dropped, all backends together (an event two full queues refused counts twice).
  std::uint64_t dropped() const { return dropped_total_.load(std::memory_order_relaxed); }
  // The same by backend, every backend that ever had a queue, in name order: "udp_firefly 12,
  // prometheus 0" for the stop line, so that a count is never read as events lost twice.
  std::vector<std::pair<std::string, std::uint64_t>> dropped_by_backend() const;
  // Events dropped at `backend`'s full queue since start.
  std::uint64_t dropped_for(const std::string& backend) const;
  // The start of every local report `plugin` made and has not ended, whether the backends follow
  // it or an explicit report hides it (LocalFlowArbiter::live_reports).
  std::vector<FlowID> live_reports(std::string_view plugin);
  // A plugin a reload removed (no successor): the connections it reported explicitly (np_api,
  // api) end now, each handed back to a live inferred report (LocalFlowArbiter::forget).
  void plugin_removed(const char* plugin);
  // The flow journal every local report is written to from now on (null: none). Set before any
  // plugin publishes; it must outlive the bus's use of it.
  void set_journal(FlowJournal* journal);
  // A report the previous flowd left live, its connection still open, whose plugin runs again
  // (flow_journal.hpp): restored in the arbiter and the status board as live, and journalled, but
  // sent to no backend (the collector has its start). `start.plugin` is the plugin's static name.
  void restore(const FlowID& start, LocalFlowArbiter::Rank rank);
  // The ends of the reports the previous flowd left live whose connection closed while no flowd
  // ran (or whose plugin is gone), each with its start time and its FlowID::plugin set: to the
  // backends, as the arbiter's own (flowd_local_flow_arbiter_events_total{outcome="added"}). A
  // tool's later end of an explicit one is dropped as a retry. Unlike a plugin's events, they wait
  // for room in the queues (there may be more than a queue holds: try15g 5), each backend for at
  // most `stall` without room, all for at most `limit` or until `stop`; what is left then is
  // dropped, counted and logged as the flow journal's.
  static constexpr std::chrono::seconds kRecoveryStall{5}, kRecoveryLimit{30};
  // `processed`, when given, hears how many of `ends` (a prefix) every backend has processed
  // (EventQueue::wait_until_processed), as that grows: the flow journal forgets those only (a kill
  // before leaves the rest for the next start, try15i A). After the last is given out, the call
  // waits for their processing too (bounded as above).
  void publish_recovered_ends(std::span<const FlowID> ends, std::stop_token stop = {},
                              const std::function<void(std::size_t)>& processed = {},
                              std::chrono::milliseconds stall = kRecoveryStall,
                              std::chrono::milliseconds limit = kRecoveryLimit);
  // A plugin took the flow journal's connections to start again (StatusBoard::take_restarts).
  void restarts_taken(std::string_view plugin);
  // The daemon's backends are stopped (Runtime::stop_all): the flow journal's end lines still
  // waiting for a backend's processing are written now (what a backend left unsent is lost anyway),
  // and a cut-short publish_recovered_ends() says to its `processed` what the backends processed
  // of its ends in their drain (the rest stays in the journal for the next start). That callback
  // must stay callable until then.
  void settle_journal_ends();
  // The daemon stops: the journal marks the ends that follow as the stop's.
  void stopping();
  // The flow journal's file is behind (a write failed): a rewrite is tried (at most once a
  // second). True while it stays behind: the daemon calls again a second later.
  bool retry_journal();
  // The flow journal's FlowJournal::stale_fd() (-1: no journal): readable once its file went
  // behind. Set at the start, before the daemon's main loop runs.
  int journal_stale_fd();

 private:
  class PluginPublisher;
  struct Sub {
    std::shared_ptr<EventQueue> queue;
    prometheus::Counter* dropped;
    std::string backend;
  };
  // Counts one arbitrated batch (flowd_local_flow_arbiter_*) and says an eviction in the log.
  void count_arbitrated(const LocalFlowArbiter::Tally& tally);
  // Copies `flows` into every backend queue, named after `plugin` (null: each event keeps its own
  // FlowID::plugin); counts what a full queue refused.
  void deliver(std::span<const FlowID> flows, const char* plugin);
  // The same for what the flow journal recovered at a start (`what` says which, for the log), no
  // plugin publishing yet: a full queue is waited on (publish_recovered_ends), not dropped.
  void deliver_recovered(std::span<const FlowID> flows, const char* what, std::stop_token stop,
                         const std::function<void(std::size_t)>& processed,
                         std::chrono::milliseconds stall, std::chrono::milliseconds limit);
  // A delivery of recovered ends: where each queue stood (`base`), how many of the `size` ends it
  // took (`accepted`), and the prefix every backend has processed, said to `processed`.
  struct RecoveredDelivery {
    std::shared_ptr<const std::vector<Sub>> subs;
    std::vector<std::uint64_t> base;
    std::vector<std::size_t> accepted;
    std::size_t size = 0, reported = 0;
    std::function<void(std::size_t)> processed;
    // How many of the ends backend i has processed.
    std::size_t done_by(std::size_t i) const;
    // Says a grown prefix processed by every backend to `processed`.
    void report();
  };
  // The delivery the stop cut short, settled after the backends' drain (control thread only).
  std::optional<RecoveredDelivery> unsettled_recovered_;
  // The same for a plugin's local events, arbitrated against the other plugins' reports of the
  // same 5-tuple (local_flow_arbiter.hpp).
  void deliver_local(std::span<const FlowID> flows, const char* plugin,
                     LocalFlowArbiter::Rank rank);

  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Family<prometheus::Gauge>& depth_;
  StatusBoard* status_;
  // Held while a local batch is arbitrated and delivered, so that the queues get each 5-tuple's
  // events in the order the arbiter decided them.
  std::mutex local_mu_;
  LocalFlowArbiter arbiter_;
  FlowJournal* journal_ = nullptr;  // under local_mu_
  std::vector<FlowID> arbitrated_;
  ReasonCounters<LocalFlowArbiter::Outcome, LocalFlowArbiter::kOutcomes> arbiter_events_;
  ReasonCounters<LocalFlowArbiter::Live, LocalFlowArbiter::kLives> arbiter_evictions_;
  std::uint64_t arbiter_evicted_ = 0;  // under local_mu_
  // The local ends of a batch, journaled once every backend has processed the batch (try15i B:
  // journaled at publish, an end still in a queue at a kill -9 was taken for sent, and the restart
  // did not end its flow). Under local_mu_; at most kMaxDeferredEnds ends (beyond, the oldest are
  // journaled as sent: a backend that takes nothing for that long is lost to them anyway).
  struct DeferredEnds {
    std::shared_ptr<const std::vector<Sub>> subs;
    std::vector<std::uint64_t> positions;  // each queue's pushed() after the batch
    std::vector<FlowID> ends;
    const char* plugin = "";
    bool explicit_rank = false;
  };
  static constexpr std::size_t kMaxDeferredEnds = 131072;
  std::deque<DeferredEnds> deferred_;
  std::size_t deferred_ends_ = 0;
  std::atomic<bool> any_deferred_{false};
  // Journals the deferred ends every backend has processed (all of them with `force`). Under
  // local_mu_.
  void flush_deferred_ends(bool force);
  // A backend's consumer processed more (EventQueue's progress hook).
  void on_backend_progress();
  LogLimiter eviction_limiter_{1, std::chrono::seconds(10)};
  std::atomic<std::shared_ptr<const std::vector<Sub>>> subs_;
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> dropped_total_{0};
  // The flowd_bus_dropped_events_total series of every backend (control plane only: queues are
  // made, and subscribers set, by the supervisor).
  mutable std::mutex series_mu_;
  std::map<std::string, prometheus::Counter*> dropped_series_;
  prometheus::Counter& dropped_series(const std::string& backend);
  // A full queue is said in the log too, not only in the counter: one line per 10 s at most.
  LogLimiter drop_limiter_{1, std::chrono::seconds(10)};
};

}  // namespace flowd
