// SPDX-License-Identifier: Apache-2.0
#include "backends/prometheus/prometheus_backend.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <limits>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "backends/prometheus/flow_metrics.hpp"
#include "backends/prometheus/prometheus_config.hpp"
#include "common/flow_table.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"
#include "flowd/daemon_status.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"

namespace flowd::prometheus_backend {
namespace {

class PrometheusBackend final : public Backend {
 public:
  PrometheusBackend(const PrometheusConfig& cfg, Context& ctx)
      : ctx_(ctx),
        listen_(cfg.listen),
        max_flows_(cfg.max_active_flows),
        log_(get_logger("backend.prometheus")),
        active_(prometheus::BuildGauge()
                    .Name("flowd_active_flows")
                    .Help("Flows started and not yet ended, by experiment and activity (registry "
                          "names; numbers for up to 256 unregistered pairs per origin, then other) "
                          "and origin")
                    .Register(ctx.metrics)),
        overflow_(prometheus::BuildCounter()
                      .Name("flowd_active_flows_overflow_total")
                      .Help("Flows forgotten by flowd_active_flows (the oldest, for a new "
                            "one) because max_active_flows was reached, by origin")
                      .Register(ctx.metrics)),
        flows_{Flows(max_flows_), Flows(max_flows_), Flows(max_flows_)} {
    for (std::size_t o = 0; o < kFlowOrigins; ++o)
      overflow_by_origin_[o] =
          &overflow_.Add({{"origin", std::string(to_string(static_cast<FlowOrigin>(o)))}});
    if (cfg.flow_metrics)
      flow_metrics_ = std::make_unique<FlowMetrics>(
          cfg.max_flow_series,
          prometheus::BuildCounter()
              .Name("flowd_flow_series_overflow_total")
              .Help("Flows whose per-flow flow_tcp_* series were dropped (the oldest, for a new "
                    "one) because max_flow_series was reached")
              .Register(ctx.metrics)
              .Add({}));
  }

  void start() override {
    const net::Endpoint* ep = &listen_;
    try {
      // civetweb serves one connection per thread and held an idle one for 30 s: with 2 threads,
      // two idle connections kept every scrape out. 8 threads, and an idle connection closed
      // after 5 s (a scrape sends its request at once).
      exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
          "listening_ports", ep->to_string(), "num_threads", "8", "request_timeout_ms", "5000"});
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot listen on " + ep->to_string() +
                               " for /metrics: " + e.what());
    }
    // The Exposer keeps only a weak_ptr: the alias must live as long as the Exposer does.
    registry_alias_ = std::shared_ptr<MetricsHub>(&ctx_.hub, [](auto*) {});
    exposer_->RegisterCollectable(registry_alias_);
    if (flow_metrics_) ctx_.hub.add(flow_metrics_.get());
    listen_host_ = ep->host;
    log_->info("serving metrics on http://{}/metrics", ep->to_string());
    count_active_flows();
  }

  // The flows active before this instance — a reload that restarted it (the stop of the one before
  // gave its counts back), or flows a restart's flow journal followed on (issue 15 E3: no start
  // reaches the backends for them) — are counted from the daemon's status. A start of one of them
  // still in the queue is not counted twice (the table has it). The marker's kept flows (listed as
  // plugin "ebpf") are not flows any plugin reported.
  void count_active_flows() {
    if (!ctx_.status) return;
    for (const ActiveFlow& a : ctx_.status->active_flows(std::numeric_limits<std::size_t>::max())) {
      if (std::string_view(a.plugin) != "ebpf") handle(start_event(a));
    }
  }

  // Every event counts, whatever its origin; each origin has its own table and budget, so observed
  // flows (a spoofable export) can neither crowd local ones out nor end them by sharing a 5-tuple.
  void handle(const FlowID& flow) override {
    auto o = static_cast<std::size_t>(flow.origin);
    if (o >= kFlowOrigins) return;
    auto& flows = flows_[o];
    // flow_tcp_* read this host's sockets: only this host's own flows may name one (a forged
    // firefly could otherwise take the series budget, or end the series of a local flow).
    const bool series = flow_metrics_ && flow.origin == FlowOrigin::kLocal;
    FlowKey key = FlowKey::of(flow);
    if (flow.state == FlowState::kStart) {
      const PairSeries& pair = pair_series(flow);
      if (series) flow_metrics_->start(flow, pair.names);
      // A full table forgets its oldest flow, which no longer counts as active.
      const bool fresh = flows
                             .emplace(key, pair.gauge,
                                      [&](const FlowKey&, prometheus::Gauge* old) {
                                        old->Decrement();
                                        overflow_by_origin_[o]->Increment();
                                      })
                             .second;
      if (fresh) pair.gauge->Increment();
    } else if (flow.state == FlowState::kEnd) {
      if (series) flow_metrics_->end(flow);
      if (auto g = flows.extract(key)) (*g)->Decrement();
    }
  }

  // civetweb's listener polls its sockets in 2-second quanta and sees the stop flag only between
  // two polls, so destroying the Exposer took up to 2 s: every stop, and every reload that restarts
  // this backend, held the other backends' queues that long. Connections made while it is being
  // destroyed end the poll at once. Bounded: at most 100 attempts, 10 ms apart.
  void stop_exposer() {
    if (!exposer_) return;
    std::vector<net::SocketAddress> targets;
    std::string host = listen_host_;
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    try {
      for (int port : exposer_->GetListeningPorts())
        for (auto& a : net::resolve(host, static_cast<std::uint16_t>(port),
                                    {.socktype = SOCK_STREAM, .numeric_host = true}))
          targets.push_back(a);
    } catch (const std::exception&) {
      // Not a literal address: the stop just takes civetweb's own time.
    }
    std::atomic<bool> stopped{false};
    std::jthread waker([&] {
      for (int i = 0; i < 100 && !stopped.load(); ++i) {
        for (const auto& t : targets) {
          UniqueFd s(::socket(t.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
          if (s) (void)::connect(s.get(), t.get(), t.length);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    exposer_.reset();
    stopped = true;
  }

  void stop() override {
    pairs_.clear();
    stop_exposer();
    if (flow_metrics_) ctx_.hub.remove(flow_metrics_.get());
    // Flows we no longer track must not stay counted (a reload may start a fresh instance).
    for (auto& flows : flows_) {
      flows.for_each([](const FlowKey&, prometheus::Gauge* g) { g->Decrement(); });
      flows.clear();
    }
  }

 private:
  // What a start needs per (origin, experiment, activity): the gauge and the registry names,
  // looked up once per pair rather than per event (a label map, a hash and a lock in the family,
  // and two name strings). Valid for one registry: a reload (other names) starts afresh.
  struct PairSeries {
    prometheus::Gauge* gauge = nullptr;
    std::shared_ptr<const FlowNames> names;
  };
  const PairSeries& pair_series(const FlowID& flow) {
    auto reg = ctx_.registry.get();
    if (reg != pairs_registry_) {
      pairs_.clear();
      pairs_registry_ = reg;
    }
    // Bounded like the gauge family itself (one entry per series it holds); a guard all the same.
    if (pairs_.size() >= kMaxPairs) pairs_.clear();
    const std::uint64_t id = std::uint64_t{static_cast<std::uint8_t>(flow.origin)} << 32 |
                             std::uint64_t{flow.experiment} << 16 | flow.activity;
    auto [it, fresh] = pairs_.try_emplace(id);
    if (fresh) {
      // Registered pairs have a series of their own (the registry bounds them). Unregistered ones
      // (a remote firefly may claim any pair of 0..65535, label_trust = any any of 512 x 64) are
      // named by their numbers up to kMaxUnregisteredPairs distinct pairs per origin, then share
      // "other": a budget per origin, so forged fireflies or an export cannot use up the one the
      // host's own flows name their pairs from.
      const std::uint32_t pair = std::uint32_t{flow.experiment} << 16 | flow.activity;
      auto& unregistered = unregistered_[static_cast<std::size_t>(flow.origin)];
      const bool own =
          reg->registered(flow.experiment, flow.activity) || unregistered.contains(pair) ||
          (unregistered.size() < kMaxUnregisteredPairs && unregistered.insert(pair).second);
      auto names = std::make_shared<FlowNames>(
          own ? FlowNames{reg->experiment_name(flow.experiment),
                          reg->activity_name(flow.experiment, flow.activity)}
              : FlowNames{"other", "other"});
      it->second.gauge = &active_.Add({{"experiment", names->experiment},
                                       {"activity", names->activity},
                                       {"origin", std::string(to_string(flow.origin))}});
      it->second.names = std::move(names);
    }
    return it->second;
  }
  static constexpr std::size_t kMaxPairs = 65536;
  static constexpr std::size_t kMaxUnregisteredPairs = 256;

  Context& ctx_;
  net::Endpoint listen_;
  std::size_t max_flows_;
  std::shared_ptr<spdlog::logger> log_;
  prometheus::Family<prometheus::Gauge>& active_;
  prometheus::Family<prometheus::Counter>& overflow_;
  std::array<prometheus::Counter*, kFlowOrigins> overflow_by_origin_{};
  std::shared_ptr<MetricsHub> registry_alias_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string listen_host_;  // as configured, to reach the listener at stop
  using Flows = FlowTable<FlowKey, prometheus::Gauge*, FlowKeyHash>;
  std::array<Flows, kFlowOrigins> flows_;  // by origin
  std::unique_ptr<FlowMetrics> flow_metrics_;
  std::shared_ptr<const ScitagsRegistry> pairs_registry_;
  std::unordered_map<std::uint64_t, PairSeries> pairs_;
  // By origin, the unregistered pairs that have series of their own in flowd_active_flows (the
  // family keeps a series once made, at 0 when its flows end, as Prometheus expects of a gauge
  // that comes back): never more than kMaxUnregisteredPairs each.
  std::array<std::unordered_set<std::uint32_t>, kFlowOrigins> unregistered_;
};

std::unique_ptr<Backend> create(const Section& cfg, Context& ctx) {
  return std::make_unique<PrometheusBackend>(PrometheusConfig::from(cfg), ctx);
}

}  // namespace

const BackendInfo& backend_info() {
  static const BackendInfo info{"prometheus", "Prometheus /metrics endpoint", config_keys(),
                                create};
  return info;
}

}  // namespace flowd::prometheus_backend
