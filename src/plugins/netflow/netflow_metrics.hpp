// SPDX-License-Identifier: Apache-2.0
// The receive-side metrics of one netflow or sflow plugin instance: packets, records, decode
// errors, sequence losses, refused exporters, templates evicted and refused, and tracker overflow
// (flowd_netflow_* or flowd_sflow_*), plus the template and held-data gauges summed over the
// receive workers at scrape time. Every label comes from a closed set or is capped
// (docs/metrics-labels.md): the version label is one of 1, 5, 9, 10, unknown, whatever the first
// bytes of a datagram say; the exporter labels are capped by max_exporter_series
// (exporter_series.hpp). Counters are thread-safe (prometheus-cpp).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/sflow.hpp"
#include "collector/template_budget.hpp"
#include "plugins/netflow/exporter_series.hpp"
#include "plugins/netflow/netflow_config.hpp"

namespace flowd::netflow {

enum class TcpRefusal : std::uint8_t;  // tcp_sessions.hpp
enum class TcpClosure : std::uint8_t;

class ReceiveMetrics {
 public:
  // `max_exporter_series`: exporters (sFlow agents) with per-exporter series of their own.
  ReceiveMetrics(prometheus::Registry& registry, Wire wire, std::size_t max_exporter_series);

  // The per-exporter series, for the workers' caches and the template gauge.
  ExporterSeries& series() { return series_; }

  // One NetFlow/IPFIX export packet (UDP datagram or TCP message) decoded, from the exporter
  // whose series are `c`.
  void count_export(const collector::DecodeResult& r, ExporterCounters& c);
  // One sFlow datagram decoded, from the agent whose series are `c`.
  void count_sflow(const collector::SflowResult& r, ExporterCounters& c);
  // A problem found outside the decoder (an IPFIX stream out of sync).
  void count_error(int version, collector::DecodeError e, ExporterCounters& c);
  void count_refused_udp() { refused_udp_->Increment(); }
  void count_refused_tcp() { refused_tcp_->Increment(); }
  void count_overflow(std::size_t flows) { overflow_->Increment(static_cast<double>(flows)); }
  // IPFIX-over-TCP connections closed at once or not accepted, and sessions ended (netflow only).
  void count_tcp_refused(TcpRefusal r);
  void count_tcp_closed(TcpClosure c);

 private:
  ExporterSeries series_;
  prometheus::Counter *sflow_counter_samples_ = nullptr, *sflow_extended_ = nullptr;
  prometheus::Counter *refused_udp_ = nullptr, *refused_tcp_ = nullptr, *overflow_ = nullptr;
  // netflow: templates evicted and refused by the byte and count bounds, by reason
  std::array<prometheus::Counter*, collector::kTemplateEvictionCount> evicted_{};
  std::array<prometheus::Counter*, collector::kTemplateRefusalCount> template_refused_{};
  std::array<prometheus::Counter*, 4> tcp_refused_{}, tcp_closed_{};  // by TcpRefusal, TcpClosure
};

// What one receive worker holds right now, published by the worker and read by scrapes.
struct DecoderCounts {
  std::atomic<std::size_t> templates{0}, pending{0}, pending_bytes{0};
  std::atomic<std::size_t> tcp_sessions{0};  // worker 0 only
  // Templates per exporter address and domain (its UDP decoder and, worker 0, its TCP sessions'),
  // refreshed when their count changes (past 1,024 templates at most once a second), and on the
  // worker's timer.
  mutable std::mutex mu;
  std::vector<collector::DomainTemplates> by_exporter;  // guarded by mu
};

// flowd_netflow_templates{exporter, observation_domain}, flowd_netflow_pending_records,
// flowd_netflow_pending_bytes and flowd_netflow_tcp_sessions, summed over the workers when
// scraped: each worker publishes its own counts, and a sum taken by one worker could be stale by
// the time another's is newer; flowd_netflow_template_bytes, read from the budget every decoder
// shares. The templates of exporters without series of their own are summed under
// exporter="other". The counts and the series must outlive the collector's registration in the
// MetricsHub.
class DecoderGauges final : public prometheus::Collectable {
 public:
  DecoderGauges(std::vector<const DecoderCounts*> counts,
                std::shared_ptr<const collector::TemplateBudget> budget,
                const ExporterSeries& series)
      : counts_(std::move(counts)), budget_(std::move(budget)), series_(&series) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::vector<const DecoderCounts*> counts_;
  std::shared_ptr<const collector::TemplateBudget> budget_;
  const ExporterSeries* series_;
};

}  // namespace flowd::netflow
