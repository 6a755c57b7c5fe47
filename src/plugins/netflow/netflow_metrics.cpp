// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/netflow_metrics.hpp"

#include <map>
#include <string>

#include "plugins/netflow/tcp_sessions.hpp"

namespace flowd::netflow {

ReceiveMetrics::ReceiveMetrics(prometheus::Registry& m, Wire wire, std::size_t max_exporter_series)
    : series_(m, wire, max_exporter_series) {
  const std::string prefix = wire == Wire::kSflow ? "flowd_sflow_" : "flowd_netflow_";
  if (wire == Wire::kNetflow) {
    auto& evicted = prometheus::BuildCounter()
                        .Name("flowd_netflow_templates_evicted_total")
                        .Help(
                            "Templates evicted to make room for newer ones, by the bound that was "
                            "reached (max_template_bytes_per_exporter, max_template_bytes)")
                        .Register(m);
    for (std::size_t i = 0; i < collector::kTemplateEvictionCount; ++i)
      evicted_[i] = &evicted.Add({{"reason", std::string(collector::to_string(
                                                 static_cast<collector::TemplateEviction>(i)))}});
    auto& refused_templates =
        prometheus::BuildCounter()
            .Name("flowd_netflow_templates_refused_total")
            .Help(
                "Templates not stored: larger than max_template_bytes_per_exporter (too_large) "
                "or beyond max_templates for their exporter (max_templates)")
            .Register(m);
    for (std::size_t i = 0; i < collector::kTemplateRefusalCount; ++i)
      template_refused_[i] = &refused_templates.Add(
          {{"reason",
            std::string(collector::to_string(static_cast<collector::TemplateRefusal>(i)))}});
    static_assert(kTcpRefusalCount == std::tuple_size_v<decltype(tcp_refused_)>);
    static_assert(kTcpClosureCount == std::tuple_size_v<decltype(tcp_closed_)>);
    auto& refused = prometheus::BuildCounter()
                        .Name("flowd_netflow_tcp_sessions_refused_total")
                        .Help(
                            "IPFIX-over-TCP connections closed at once or left waiting, by reason: "
                            "max_sessions, per_exporter, emfile (out of descriptors), enomem")
                        .Register(m);
    for (std::size_t i = 0; i < kTcpRefusalCount; ++i)
      tcp_refused_[i] =
          &refused.Add({{"reason", std::string(to_string(static_cast<TcpRefusal>(i)))}});
    auto& closed =
        prometheus::BuildCounter()
            .Name("flowd_netflow_tcp_sessions_closed_total")
            .Help("IPFIX-over-TCP sessions ended, by reason: peer, error, out_of_sync, idle")
            .Register(m);
    for (std::size_t i = 0; i < kTcpClosureCount; ++i)
      tcp_closed_[i] =
          &closed.Add({{"reason", std::string(to_string(static_cast<TcpClosure>(i)))}});
  } else {
    sflow_counter_samples_ = &prometheus::BuildCounter()
                                  .Name("flowd_sflow_counters_samples_total")
                                  .Help("sFlow counter samples received (skipped)")
                                  .Register(m)
                                  .Add({});
    sflow_extended_ = &prometheus::BuildCounter()
                           .Name("flowd_sflow_extended_records_total")
                           .Help("sFlow extended flow records received (skipped)")
                           .Register(m)
                           .Add({});
  }
  auto& refused = prometheus::BuildCounter()
                      .Name(prefix + "refused_total")
                      .Help(
                          "Datagrams and TCP sessions from exporters outside `allow`, dropped "
                          "unread, by transport")
                      .Register(m);
  refused_udp_ = &refused.Add({{"transport", "udp"}});
  refused_tcp_ = wire == Wire::kNetflow ? &refused.Add({{"transport", "tcp"}}) : nullptr;
  overflow_ = &prometheus::BuildCounter()
                   .Name(prefix + "flows_overflow_total")
                   .Help(
                       "Flows not tracked because max_flows flows were tracked already (their "
                       "events are lost)")
                   .Register(m)
                   .Add({});
}

void ReceiveMetrics::count_export(const collector::DecodeResult& r, ExporterCounters& c) {
  const std::size_t v = version_slot(r.version);
  series_.packets(c, v).Increment();
  if (series_.is_other(c)) series_.count_folded();
  if (r.records) series_.records(c, v).Increment(static_cast<double>(r.records));
  if (r.sequence_lost) series_.lost(c).Increment(static_cast<double>(r.sequence_lost));
  for (auto e : r.errors) count_error(r.version, e, c);
  for (std::size_t i = 0; i < r.templates_evicted.size(); ++i)
    if (r.templates_evicted[i]) evicted_[i]->Increment(r.templates_evicted[i]);
  for (std::size_t i = 0; i < r.templates_refused.size(); ++i)
    if (r.templates_refused[i]) template_refused_[i]->Increment(r.templates_refused[i]);
}

void ReceiveMetrics::count_sflow(const collector::SflowResult& r, ExporterCounters& c) {
  series_.packets(c, 0).Increment();
  if (series_.is_other(c)) series_.count_folded();
  if (r.records) series_.records(c, 0).Increment(static_cast<double>(r.records));
  if (r.sequence_lost) series_.lost(c).Increment(static_cast<double>(r.sequence_lost));
  if (r.counter_samples) sflow_counter_samples_->Increment(static_cast<double>(r.counter_samples));
  if (r.extended_records) sflow_extended_->Increment(static_cast<double>(r.extended_records));
  for (std::size_t i = 0; i < r.errors.size(); ++i)
    if (r.errors[i]) series_.error(c, 0, i).Increment(r.errors[i]);
}

void ReceiveMetrics::count_tcp_refused(TcpRefusal r) {
  if (auto* c = tcp_refused_[static_cast<std::size_t>(r)]) c->Increment();
}

void ReceiveMetrics::count_tcp_closed(TcpClosure c) {
  if (auto* counter = tcp_closed_[static_cast<std::size_t>(c)]) counter->Increment();
}

void ReceiveMetrics::count_error(int version, collector::DecodeError e, ExporterCounters& c) {
  series_.error(c, version_slot(version), static_cast<std::size_t>(e)).Increment();
}

namespace {

prometheus::MetricFamily gauge(const char* name, const char* help, double v) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric m;
  m.gauge.value = v;
  f.metric.push_back(m);
  return f;
}

}  // namespace

std::vector<prometheus::MetricFamily> DecoderGauges::Collect() const {
  double p = 0, pb = 0, s = 0;
  std::vector<collector::DomainTemplates> by_exporter;
  for (const auto* c : counts_) {
    p += static_cast<double>(c->pending.load(std::memory_order_relaxed));
    pb += static_cast<double>(c->pending_bytes.load(std::memory_order_relaxed));
    s += static_cast<double>(c->tcp_sessions.load(std::memory_order_relaxed));
    std::lock_guard lock(c->mu);
    by_exporter.insert(by_exporter.end(), c->by_exporter.begin(), c->by_exporter.end());
  }
  // Per series: "other" is always there, the exporters with series of their own when they hold
  // templates.
  std::map<prometheus::Labels, double> templates{{series_->other().labels, 0.0}};
  for (const auto& d : by_exporter)
    templates[series_->counted_under(SeriesKey{d.address, d.domain, true})] +=
        static_cast<double>(d.templates);
  prometheus::MetricFamily t;
  t.name = "flowd_netflow_templates";
  t.help = "Templates known (UDP exporters and TCP sessions), by exporter and observation domain";
  t.type = prometheus::MetricType::Gauge;
  for (const auto& [labels, n] : templates) {
    prometheus::ClientMetric m;
    for (const auto& [name, value] : labels) m.label.push_back({name, value});
    m.gauge.value = n;
    t.metric.push_back(std::move(m));
  }
  return {
      std::move(t),
      gauge("flowd_netflow_template_bytes",
            "Bytes the templates hold, as bounded by max_template_bytes (fields, raw records, "
            "bookkeeping)",
            static_cast<double>(budget_->bytes())),
      gauge("flowd_netflow_pending_records", "Data sets held while their template is missing", p),
      gauge("flowd_netflow_pending_bytes",
            "Bytes of the data sets held while their template is missing", pb),
      gauge("flowd_netflow_tcp_sessions", "IPFIX-over-TCP sessions open", s)};
}

}  // namespace flowd::netflow
