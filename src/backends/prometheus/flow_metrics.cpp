// SPDX-License-Identifier: Apache-2.0
#include "backends/prometheus/flow_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/metric_family.h>

#include "backends/prometheus/tcp_metrics.hpp"
#include "flowd/log.hpp"

namespace flowd::prometheus_backend {

void FlowMetrics::start(const FlowID& flow, std::shared_ptr<const FlowNames> names) {
  if (flow.protocol != Protocol::kTcp) return;
  std::lock_guard lock(mu_);
  FlowKey key = FlowKey::of(flow);
  if (flows_.contains(key)) return;
  const auto evicted = flows_.overflow();
  flows_.emplace(key, Labels{key, std::move(names)});
  if (flows_.overflow() != evicted) overflow_.Increment();
}

void FlowMetrics::end(const FlowID& flow) {
  std::lock_guard lock(mu_);
  flows_.erase(FlowKey::of(flow));
}

std::size_t FlowMetrics::size() const {
  std::lock_guard lock(mu_);
  return flows_.size();
}

std::vector<prometheus::MetricFamily> FlowMetrics::Collect() const {
  std::lock_guard scrape(scrape_mu_);
  std::optional<Flows> flows;
  {
    std::lock_guard lock(mu_);
    if (flows_.empty()) return {};
    flows = flows_;
  }
  auto specs = prometheus_backend::tcp_metric_specs();
  std::vector<prometheus::MetricFamily> fams(specs.size() + 1);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    fams[i].name = specs[i].name;
    fams[i].help = specs[i].help;
    fams[i].type =
        specs[i].counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge;
  }
  auto& info = fams.back();
  info.name = "flow_tcp_ca_info";
  info.help = "TCP options and congestion control of the flow, as ss prints them (value always 1)";
  info.type = prometheus::MetricType::Gauge;

  std::string error;
  try {
    if (!diag_) diag_.emplace();
  } catch (const std::exception& e) {
    limited_warn(*get_logger("backend.prometheus"), limiter_, "per-flow metrics: {}", e.what());
    return {};
  }
  netlink::DumpRequest req;
  req.details = true;
  req.states = ~(1u << netlink::kTcpListen);
  auto labels_of = [](const Labels& l) {
    return std::vector<prometheus::ClientMetric::Label>{
        {"src", l.key.src.to_string()},
        {"dst", l.key.dst.to_string()},
        {"exp", l.names->experiment},
        {"act", l.names->activity},
        {"flow", std::to_string(l.key.src_port) + ":" + std::to_string(l.key.dst_port)}};
  };
  bool ok = diag_->dump(
      req,
      [&](const netlink::SockEntry& e, const netlink::TcpDetails* d) {
        if (!d) return;
        Labels* flow = netlink::find_socket_flow(*flows, e);
        if (!flow || flow->scraped) return;
        flow->scraped = true;  // one socket per flow (the first found)
        auto labels = labels_of(*flow);
        for (std::size_t i = 0; i < specs.size(); ++i) {
          auto v = specs[i].value(*d);
          if (!v) continue;
          prometheus::ClientMetric m;
          m.label = labels;
          (specs[i].counter ? m.counter.value : m.gauge.value) = *v;
          fams[i].metric.push_back(std::move(m));
        }
        prometheus::ClientMetric m;
        m.label = labels;
        m.label.push_back({"opts", prometheus_backend::tcp_options_text(*d)});
        m.gauge.value = 1;
        info.metric.push_back(std::move(m));
      },
      error);
  if (!ok) limited_warn(*get_logger("backend.prometheus"), limiter_, "per-flow metrics: {}", error);
  std::erase_if(fams, [](const prometheus::MetricFamily& f) { return f.metric.empty(); });
  return fams;
}

}  // namespace flowd::prometheus_backend
