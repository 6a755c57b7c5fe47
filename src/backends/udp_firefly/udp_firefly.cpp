// SPDX-License-Identifier: Apache-2.0
// The udp_firefly backend's glue: each event is routed by its origin (firefly_route), given its
// start time (start_times), public addresses (ip_discovery) and tcp_info (tcp_enrichment), written
// (firefly_message) into the sender's next buffer and queued (firefly_sender). Configuration:
// udp_firefly_config.
#include "backends/udp_firefly/udp_firefly.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <limits>
#include <mutex>
#include <optional>

#include "backends/udp_firefly/firefly_route.hpp"
#include "backends/udp_firefly/firefly_sender.hpp"
#include "backends/udp_firefly/ip_discovery.hpp"
#include "backends/udp_firefly/start_times.hpp"
#include "backends/udp_firefly/tcp_enrichment.hpp"
#include "backends/udp_firefly/udp_firefly_config.hpp"
#include "common/net/endpoint.hpp"
#include "firefly/firefly_message.hpp"
#include "flowd/daemon_status.hpp"
#include "flowd/event_queue.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/reload_shelf.hpp"

namespace flowd::udp_firefly {

using firefly::append_firefly;
using firefly::append_relayed_firefly;
using firefly::FireflyFields;

namespace {

// What an instance stopped by a reload leaves its successor (flowd/reload_shelf.hpp): the start
// times of the flows live at its stop (by origin) and, with netlink, their sockets' last details.
// Without them every flow live across a reload that changed [backend.udp_firefly] got an end
// firefly whose start-time was its end-time, though its start firefly had the real one (retry15d
// N2). Nothing else per flow lives here: the route and the addresses come from the event and the
// configuration, the public mapping and the collectors' addresses are found again at start().
struct ShelvedFlows final : ShelfItem {
  std::vector<StartTimes> starts;       // by origin
  std::optional<TcpEnrichment> enrich;  // the flows only (no socket): with netlink = yes
  // When the next ongoing fireflies were due: a reload does not put them off by a whole
  // ongoing_interval (reloads more often than it would stop them all; try15e E2).
  std::optional<std::chrono::steady_clock::time_point> next_ongoing;
};

constexpr const char* kShelfKey = "backend.udp_firefly.reloaded";

class UdpFirefly final : public Backend {
 public:
  UdpFirefly(UdpFireflyConfig cfg, Context& ctx)
      : cfg_(std::move(cfg)),
        log_(get_logger("backend.udp_firefly")),
        sender_(cfg_.port, cfg_.collectors, cfg_.collector_resolve_interval,
                send_counters(ctx.metrics, cfg_.collectors), log_),
        heartbeats_(ctx.heartbeats),
        // One table per origin: observed flows forwarded to the collector cannot evict a local
        // flow's start, nor end it by sharing its 5-tuple.
        starts_{StartTimes(cfg_.max_tracked_flows), StartTimes(cfg_.max_tracked_flows),
                StartTimes(cfg_.max_tracked_flows)},
        stopping_(ctx.stopping),
        shelf_(ctx.shelf),
        status_(ctx.status) {
    route_.collector = !cfg_.collectors.empty();
    route_.forward_observed = cfg_.forward_observed;
    if (cfg_.netlink) enrich_.emplace(cfg_.ongoing_interval, cfg_.max_tracked_flows);
    // Fields that are the same in every firefly, set once.
    fields_.hostname = ctx.hostname;
    fields_.application = "flowd-cpp v" FLOWD_VERSION;
    fields_.syslog_header = cfg_.syslog_header;
    relay_fields_.hostname = ctx.hostname;
    relay_fields_.syslog_header = cfg_.syslog_header;
    auto& suppressed =
        prometheus::BuildCounter()
            .Name("flowd_fireflies_suppressed_total")
            .Help(
                "Fireflies not sent because of the flow's origin, by origin and reason: "
                "flow_address, forward_observed, no_collector")
            .Register(ctx.metrics);
    // Every combination that can happen exists from the start, at 0: the set is closed.
    for (FlowOrigin o : {FlowOrigin::kRemote, FlowOrigin::kObserved})
      for (auto r : {SuppressReason::kFlowAddress, SuppressReason::kForwardObserved,
                     SuppressReason::kNoCollector})
        if (o == FlowOrigin::kObserved || r != SuppressReason::kForwardObserved)
          suppressed_[static_cast<std::size_t>(o)][static_cast<std::size_t>(r)] = &suppressed.Add(
              {{"origin", std::string(to_string(o))}, {"reason", std::string(to_string(r))}});
    auto& overflow =
        prometheus::BuildCounter()
            .Name("flowd_firefly_flows_overflow_total")
            .Help(
                "Flows forgotten (the oldest, for a new one) because max_tracked_flows was "
                "reached, by table (start_time: end fireflies then carry the plugin's start "
                "time or their own; netlink: no more ongoing fireflies, the end has only a "
                "fresh lookup) and origin")
            .Register(ctx.metrics);
    for (std::size_t o = 0; o < kFlowOrigins; ++o)
      start_overflow_[o].counter =
          &overflow.Add({{"table", "start_time"},
                         {"origin", std::string(to_string(static_cast<FlowOrigin>(o)))}});
    if (enrich_)
      netlink_overflow_.counter = &overflow.Add(
          {{"table", "netlink"}, {"origin", std::string(to_string(FlowOrigin::kLocal))}});
  }

  void start() override {
    if (enrich_) enrich_->open();
    sender_.open();
    std::string copies;
    for (const auto& c : cfg_.collectors) {
      copies += copies.empty() ? ", copies to " : ", ";
      copies += c.to_string();
    }
    log_->info("sending fireflies to each flow's destination port {}{}", cfg_.port, copies);
    take_over();
    if (cfg_.ip_discovery) discover();
  }

  void reloaded() override {
    if (cfg_.ip_discovery) discover();
  }

  // The batch of events becomes a batch of datagrams: one sendmmsg() per family per batch (the
  // kernel's per-datagram cost stays, the syscalls go).
  void run(std::stop_token stop, EventQueue& in) override {
    // The collectors' lookups run beside this thread for as long as it runs.
    sender_.start_resolver(heartbeats_);
    struct ResolverStop {
      FireflySender& s;
      ~ResolverStop() { s.stop_resolver(); }
    } resolver_stop{sender_};
    std::vector<FlowID> batch;
    if (enrich_ && enrich_->ongoing_interval().count() > 0) return run_with_ongoing(stop, in);
    while (in.pop_batch(batch, FireflySender::kBatch, stop)) {
      for (const auto& f : batch) handle(f);
      flush();
    }
  }

  void handle(const FlowID& flow) override {
    FireflyRoute route = route_firefly(flow.origin, route_);
    count_withheld(flow.origin, route);
    // Nothing to send, nothing to remember: no start time, no netlink lookup, no ongoing timer.
    if (!route.sends()) return;
    if (flow.origin == FlowOrigin::kRemote && flow.firefly_json) {
      relay(flow);
      return;
    }
    const bool local = flow.origin == FlowOrigin::kLocal;
    const auto o = static_cast<std::size_t>(flow.origin);
    FireflyFields& f = fields_;
    f.now = Clock::now();
    f.start_time = starts_[o].on_event(flow, f.now);
    start_overflow_[o].export_from(starts_[o].overflow());
    f.src_override.clear();
    f.dst_override.clear();
    f.netlink.clear();
    f.usage.reset();
    // This host's addresses and sockets are only in its own flows: an observed flow keeps the
    // addresses the router exported, and gets no tcp_info (nor ongoing fireflies) from this host.
    if (local && cfg_.ip_discovery) {
      std::lock_guard lock(mapping_mu_);
      if (auto p = mapping_.public_for(flow.src)) f.src_override = p->to_string();
      if (auto p = mapping_.public_for(flow.dst)) f.dst_override = p->to_string();
    }
    if (const auto& fixed = flow.family() == AF_INET6 ? cfg_.ip6_src : cfg_.ip4_src;
        local && !fixed.empty())
      f.src_override = fixed;
    if (local && enrich_) {
      TcpReport tcp = enrich_->on_event(flow);
      f.netlink = std::move(tcp.netlink);
      f.usage = tcp.usage;
      netlink_overflow_.export_from(enrich_->overflow());
    }
    std::string& msg = sender_.next_message();
    append_firefly(msg, flow, f);
    if (log_->should_log(spdlog::level::debug)) log_->debug("firefly {}", msg);
    sender_.queue(route.to_flow ? &flow : nullptr, route.to_collector);
  }

  // After run() returned (its thread joined): the tables are this thread's to hand on. The shelf
  // destroys them when no successor takes them (the backend was removed, or the daemon stops).
  void stop() override {
    flush();
    if (!shelf_ || stopping_.stop_requested()) return;
    auto item = std::make_unique<ShelvedFlows>();
    item->starts.assign(std::make_move_iterator(starts_.begin()),
                        std::make_move_iterator(starts_.end()));
    if (enrich_) {
      item->enrich.emplace(enrich_->ongoing_interval(), cfg_.max_tracked_flows);
      item->enrich->take_over(std::move(*enrich_));
    }
    item->next_ongoing = next_ongoing_;
    shelf_->put(kShelfKey, std::move(item));
  }

 private:
  // A FlowTable's overflow count (owned by this thread) carried into its Prometheus counter.
  struct OverflowExport {
    prometheus::Counter* counter = nullptr;
    std::uint64_t exported = 0;
    void export_from(std::uint64_t now) {
      if (now == exported) return;
      counter->Increment(static_cast<double>(now - exported));
      exported = now;
    }
  };

  static SendCounters send_counters(prometheus::Registry& metrics,
                                    const std::vector<net::Endpoint>& collectors) {
    auto& sent = prometheus::BuildCounter()
                     .Name("flowd_fireflies_sent_total")
                     .Help(
                         "Fireflies sent, by destination (the flow's peer, or the collectors: one "
                         "per collector)")
                     .Register(metrics);
    auto& errors = prometheus::BuildCounter()
                       .Name("flowd_firefly_send_errors_total")
                       .Help("Fireflies that could not be sent, by destination")
                       .Register(metrics);
    SendCounters c{&sent.Add({{"destination", "flow"}}),
                   &sent.Add({{"destination", "collector"}}),
                   &errors.Add({{"destination", "flow"}}),
                   &errors.Add({{"destination", "collector"}}),
                   {},
                   {},
                   {}};
    if (collectors.empty()) return c;
    // Labelled by the configured collector (host:port): a closed set of at most kMaxCollectors.
    auto& per_sent = prometheus::BuildCounter()
                         .Name("flowd_collector_fireflies_sent_total")
                         .Help("Fireflies sent to each configured collector")
                         .Register(metrics);
    auto& per_errors = prometheus::BuildCounter()
                           .Name("flowd_collector_send_errors_total")
                           .Help(
                               "Fireflies that could not be sent to a configured collector (the "
                               "kernel refused them, or its name never resolved yet)")
                           .Register(metrics);
    auto& per_resolve = prometheus::BuildCounter()
                            .Name("flowd_collector_resolve_failures_total")
                            .Help(
                                "Failed lookups of a configured collector's name (the last address "
                                "found stays in use)")
                            .Register(metrics);
    for (const auto& ep : collectors) {
      const prometheus::Labels l{{"collector", ep.to_string()}};
      c.sent_per_collector.push_back(&per_sent.Add(l));
      c.errors_per_collector.push_back(&per_errors.Add(l));
      c.resolve_failures.push_back(&per_resolve.Add(l));
    }
    return c;
  }

  void count_withheld(FlowOrigin origin, const FireflyRoute& route) {
    auto o = static_cast<std::size_t>(origin);
    for (auto reason : {route.flow_withheld, route.collector_withheld})
      if (reason && o < kFlowOrigins)
        if (auto* c = suppressed_[o][static_cast<std::size_t>(*reason)]) c->Increment();
  }

  // Blocks for the STUN round trips (on the daemon's reload thread, not its signal loop; cut short
  // when the daemon stops); fireflies meanwhile use the previous mapping.
  void discover() {
    AddressMapping m = discover_addresses(cfg_.discovery, *log_, stopping_);
    std::lock_guard lock(mapping_mu_);
    mapping_ = m;
  }

  // A firefly received by the firefly plugin goes to the collector only (route_firefly), its fields
  // unchanged.
  void relay(const FlowID& flow) {
    relay_fields_.now = Clock::now();
    append_relayed_firefly(sender_.next_message(), *flow.firefly_json, relay_fields_);
    sender_.queue(nullptr, true);
  }

  // As run(), and every ongoing_interval one sock_diag dump turns into ongoing fireflies.
  void run_with_ongoing(std::stop_token stop, EventQueue& in) {
    std::vector<FlowID> batch;
    // A reload's predecessor's schedule, unless this interval is shorter than what was left.
    const auto first = std::chrono::steady_clock::now() + enrich_->ongoing_interval();
    auto& next = next_ongoing_;
    next = next ? std::min(*next, first) : first;
    while (in.pop_batch_until(batch, FireflySender::kBatch, stop, *next)) {
      for (const auto& f : batch) handle(f);
      if (std::chrono::steady_clock::now() >= *next) {
        batch.clear();
        enrich_->ongoing_events(batch);
        for (const auto& f : batch) handle(f);
        next = std::chrono::steady_clock::now() + enrich_->ongoing_interval();
      }
      flush();
    }
  }

  void flush() { sender_.flush(); }

  // Without a predecessor (the daemon's start, or the backend added by a reload after another
  // removed it): the starts of the flows the daemon lists as active, which the backends saw start
  // while no udp_firefly ran, so that their end fireflies still carry their start-time. Oldest
  // first; not the marker's kept flows (no plugin of this flowd reported them), nor what this
  // backend sends nothing for (firefly_route) or relays as received (remote).
  void remember_active_flows() {
    if (!status_) return;
    std::size_t n = 0;
    for (const ActiveFlow& a : status_->active_flows(std::numeric_limits<std::size_t>::max())) {
      if (std::string_view(a.plugin) == "ebpf" || a.origin == FlowOrigin::kRemote) continue;
      if (!route_firefly(a.origin, route_).sends()) continue;
      const auto o = static_cast<std::size_t>(a.origin);
      starts_[o].remember(a.key, a.start);
      start_overflow_[o].export_from(starts_[o].overflow());
      // netlink = yes: its socket is followed too, for its ongoing fireflies (issue 15 E5: a
      // backend added by a reload sent none for the flows live before it).
      if (enrich_ && a.origin == FlowOrigin::kLocal && a.key.protocol == Protocol::kTcp) {
        enrich_->remember(start_event(a));
        netlink_overflow_.export_from(enrich_->overflow());
      }
      ++n;
    }
    if (n) log_->info("took the start times of {} active flows from the daemon's status", n);
  }

  // The predecessor's flows (ShelvedFlows), at start() once nothing can fail any more: a start
  // that fails leaves them on the shelf for the configuration applied instead. Oldest first, so
  // that a smaller max_tracked_flows keeps the newest; what does not fit is counted in
  // flowd_firefly_flows_overflow_total at once.
  void take_over() {
    auto item = shelf_ ? shelf_->take(kShelfKey) : nullptr;
    auto* shelved = dynamic_cast<ShelvedFlows*>(item.get());
    if (!shelved) return remember_active_flows();
    std::size_t kept = 0, had = 0;
    for (std::size_t o = 0; o < kFlowOrigins && o < shelved->starts.size(); ++o) {
      had += shelved->starts[o].size();
      starts_[o].take_over(shelved->starts[o]);
      kept += starts_[o].size();
      start_overflow_[o].export_from(starts_[o].overflow());
    }
    if (enrich_ && shelved->enrich) {
      enrich_->take_over(std::move(*shelved->enrich));
      netlink_overflow_.export_from(enrich_->overflow());
      next_ongoing_ = shelved->next_ongoing;
    }
    if (had == 0) return;
    if (kept < had)
      log_->warn(
          "kept the start times of {} of the {} flows live across the reload "
          "(max_tracked_flows = {} per origin: the oldest are forgotten, their end fireflies "
          "carry the plugin's start time or their own)",
          kept, had, cfg_.max_tracked_flows);
    else
      log_->info("kept the start times of the {} flows live across the reload", kept);
  }

  UdpFireflyConfig cfg_;
  std::shared_ptr<spdlog::logger> log_;
  FireflySender sender_;
  HeartbeatBoard* heartbeats_;           // for the resolver thread; null in unit tests
  FireflyFields fields_, relay_fields_;  // reused: their strings keep their capacity
  std::optional<TcpEnrichment> enrich_;
  std::array<StartTimes, kFlowOrigins> starts_;  // by origin
  std::array<OverflowExport, kFlowOrigins> start_overflow_{};
  OverflowExport netlink_overflow_;
  RouteOptions route_;
  // By origin and reason; null for combinations that cannot happen.
  std::array<std::array<prometheus::Counter*, kSuppressReasons>, kFlowOrigins> suppressed_{};
  std::stop_token stopping_;  // the daemon's: STUN gives up when it stops
  ReloadShelf* shelf_;        // to and from a reload's predecessor/successor; null in unit tests
  // When the next ongoing fireflies are due (run_with_ongoing's thread; a predecessor's at start).
  std::optional<std::chrono::steady_clock::time_point> next_ongoing_;
  DaemonStatus* status_;  // the flows active before this instance; null in unit tests
  std::mutex mapping_mu_;
  AddressMapping mapping_;
};

std::unique_ptr<Backend> create(const Section& cfg, Context& ctx) {
  return std::make_unique<UdpFirefly>(UdpFireflyConfig::from(cfg), ctx);
}

}  // namespace

const BackendInfo& backend_info() {
  static const BackendInfo info{"udp_firefly",
                                "UDP fireflies (syslog + JSON) to each flow's peer and a collector",
                                config_keys(), create};
  return info;
}

}  // namespace flowd::udp_firefly
