// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/netflow_metrics.hpp"

#include <string>

#include "plugins/netflow/tcp_sessions.hpp"

namespace flowd::netflow {

ReceiveMetrics::ReceiveMetrics(prometheus::Registry& m, Wire wire) {
  const std::string prefix = wire == Wire::kSflow ? "flowd_sflow_" : "flowd_netflow_";
  if (wire == Wire::kNetflow) {
    auto& packets = prometheus::BuildCounter()
                        .Name("flowd_netflow_packets_total")
                        .Help("Export packets (UDP datagrams, TCP messages) received, by version")
                        .Register(m);
    auto& records = prometheus::BuildCounter()
                        .Name("flowd_netflow_records_total")
                        .Help("Flow records decoded, by version")
                        .Register(m);
    errors_ = &prometheus::BuildCounter()
                   .Name("flowd_netflow_decode_errors_total")
                   .Help("Problems found while decoding exports, by version and reason")
                   .Register(m);
    for (std::size_t i = 0; i < kVersions.size(); ++i) {
      packets_[i] = &packets.Add({{"version", std::string(kVersions[i])}});
      records_[i] = &records.Add({{"version", std::string(kVersions[i])}});
    }
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
    lost_ = &prometheus::BuildCounter()
                 .Name("flowd_netflow_sequence_lost_total")
                 .Help("Records or packets missing according to the exporters' sequence numbers")
                 .Register(m)
                 .Add({});
  } else {
    packets_[0] = &prometheus::BuildCounter()
                       .Name("flowd_sflow_datagrams_total")
                       .Help("sFlow datagrams received")
                       .Register(m)
                       .Add({});
    records_[0] = &prometheus::BuildCounter()
                       .Name("flowd_sflow_samples_total")
                       .Help("sFlow flow samples decoded")
                       .Register(m)
                       .Add({});
    auto& errors = prometheus::BuildCounter()
                       .Name("flowd_sflow_decode_errors_total")
                       .Help("Problems found while decoding sFlow datagrams, by reason")
                       .Register(m);
    for (std::size_t i = 0; i < collector::kSflowErrorCount; ++i)
      sflow_errors_[i] = &errors.Add(
          {{"reason", std::string(collector::to_string(static_cast<collector::SflowError>(i)))}});
    lost_ = &prometheus::BuildCounter()
                 .Name("flowd_sflow_sequence_lost_total")
                 .Help("Datagrams missing according to the agents' sequence numbers")
                 .Register(m)
                 .Add({});
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

std::size_t ReceiveMetrics::version_slot(int v) {
  switch (v) {
    case 1:
      return 0;
    case 5:
      return 1;
    case 9:
      return 2;
    case 10:
      return 3;
    default:
      return 4;
  }
}

void ReceiveMetrics::count_export(const collector::DecodeResult& r) {
  const std::size_t v = version_slot(r.version);
  packets_[v]->Increment();
  if (r.records) records_[v]->Increment(static_cast<double>(r.records));
  if (r.sequence_lost) lost_->Increment(static_cast<double>(r.sequence_lost));
  for (auto e : r.errors) count_error(r.version, e);
  for (std::size_t i = 0; i < r.templates_evicted.size(); ++i)
    if (r.templates_evicted[i]) evicted_[i]->Increment(r.templates_evicted[i]);
  for (std::size_t i = 0; i < r.templates_refused.size(); ++i)
    if (r.templates_refused[i]) template_refused_[i]->Increment(r.templates_refused[i]);
}

void ReceiveMetrics::count_sflow(const collector::SflowResult& r) {
  packets_[0]->Increment();
  if (r.records) records_[0]->Increment(static_cast<double>(r.records));
  if (r.sequence_lost) lost_->Increment(static_cast<double>(r.sequence_lost));
  if (r.counter_samples) sflow_counter_samples_->Increment(static_cast<double>(r.counter_samples));
  if (r.extended_records) sflow_extended_->Increment(static_cast<double>(r.extended_records));
  for (std::size_t i = 0; i < r.errors.size(); ++i)
    if (r.errors[i]) sflow_errors_[i]->Increment(r.errors[i]);
}

void ReceiveMetrics::count_tcp_refused(TcpRefusal r) {
  if (auto* c = tcp_refused_[static_cast<std::size_t>(r)]) c->Increment();
}

void ReceiveMetrics::count_tcp_closed(TcpClosure c) {
  if (auto* counter = tcp_closed_[static_cast<std::size_t>(c)]) counter->Increment();
}

void ReceiveMetrics::count_error(int version, collector::DecodeError e) {
  errors_
      ->Add({{"version", std::string(kVersions[version_slot(version)])},
             {"reason", std::string(collector::to_string(e))}})
      .Increment();
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
  double t = 0, p = 0, pb = 0, s = 0;
  for (const auto* c : counts_) {
    t += static_cast<double>(c->templates.load(std::memory_order_relaxed));
    p += static_cast<double>(c->pending.load(std::memory_order_relaxed));
    pb += static_cast<double>(c->pending_bytes.load(std::memory_order_relaxed));
    s += static_cast<double>(c->tcp_sessions.load(std::memory_order_relaxed));
  }
  return {
      gauge("flowd_netflow_templates", "Templates known (UDP exporters and TCP sessions)", t),
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
