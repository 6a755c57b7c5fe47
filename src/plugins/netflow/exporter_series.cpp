// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/exporter_series.hpp"

#include <sys/socket.h>

#include <cstring>

namespace flowd::netflow {
namespace {

std::uint32_t be32(std::span<const std::uint8_t> b, std::size_t at) {
  return std::uint32_t{b[at]} << 24 | std::uint32_t{b[at + 1]} << 16 |
         std::uint32_t{b[at + 2]} << 8 | std::uint32_t{b[at + 3]};
}

}  // namespace

std::size_t SeriesKeyHash::operator()(const SeriesKey& k) const noexcept {
  // FNV-1a over the address bytes, the domain and whether there is one.
  std::uint64_t h = 14695981039346656037ull;
  auto mix = [&](std::uint8_t b) { h = (h ^ b) * 1099511628211ull; };
  const std::size_t n = k.address.family == AF_INET ? 4 : 16;
  for (std::size_t i = 0; i < n; ++i) mix(k.address.bytes[i]);
  for (int s = 0; s < 32; s += 8) mix(static_cast<std::uint8_t>(k.domain >> s));
  mix(static_cast<std::uint8_t>(k.has_domain ? 1 : 0) |
      static_cast<std::uint8_t>(k.address.family == AF_INET6 ? 2 : 0));
  return static_cast<std::size_t>(h);
}

SeriesKey netflow_series_key(std::span<const std::uint8_t> packet, const IpAddress& sender) {
  SeriesKey key{.address = sender};
  if (packet.size() < 2) return key;
  const unsigned version = unsigned{packet[0]} << 8 | packet[1];
  if (version == 9 && packet.size() >= 20) {
    key.domain = be32(packet, 16);  // source id
    key.has_domain = true;
  } else if (version == 10 && packet.size() >= 16) {
    key.domain = be32(packet, 12);  // observation domain id
    key.has_domain = true;
  }
  return key;
}

SeriesKey sflow_series_key(std::span<const std::uint8_t> datagram, const IpAddress& sender) {
  SeriesKey key{.address = sender};
  if (datagram.size() < 8 || be32(datagram, 0) != 5) return key;
  const std::uint32_t type = be32(datagram, 4);
  const std::size_t length = type == 1 ? 4 : type == 2 ? 16 : 0;
  if (length == 0 || datagram.size() < 8 + length + 4) return key;
  IpAddress agent;
  agent.family = type == 1 ? AF_INET : AF_INET6;
  std::memcpy(agent.bytes.data(), datagram.data() + 8, length);
  key.address = agent;
  key.domain = be32(datagram, 8 + length);  // sub_agent_id
  key.has_domain = true;
  return key;
}

std::size_t version_slot(int v) {
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

ExporterSeries::ExporterSeries(prometheus::Registry& m, Wire wire, std::size_t cap)
    : wire_(wire),
      cap_(cap),
      address_label_(wire == Wire::kSflow ? "agent" : "exporter"),
      domain_label_(wire == Wire::kSflow ? "sub_agent" : "observation_domain") {
  if (wire == Wire::kNetflow) {
    packets_ = &prometheus::BuildCounter()
                    .Name("flowd_netflow_packets_total")
                    .Help(
                        "Export packets (UDP datagrams, TCP messages) received, by exporter, "
                        "observation domain and version")
                    .Register(m);
    records_ = &prometheus::BuildCounter()
                    .Name("flowd_netflow_records_total")
                    .Help("Flow records decoded, by exporter, observation domain and version")
                    .Register(m);
    errors_ = &prometheus::BuildCounter()
                   .Name("flowd_netflow_decode_errors_total")
                   .Help(
                       "Problems found while decoding exports, by exporter, observation domain, "
                       "version and reason")
                   .Register(m);
    lost_ = &prometheus::BuildCounter()
                 .Name("flowd_netflow_sequence_lost_total")
                 .Help(
                     "Records or packets missing according to the exporters' sequence numbers, "
                     "by exporter and observation domain")
                 .Register(m);
    folded_ = &prometheus::BuildCounter()
                   .Name("flowd_netflow_exporters_folded_total")
                   .Help(
                       "Export packets counted under exporter=\"other\": their exporter and "
                       "domain came after max_exporter_series others")
                   .Register(m)
                   .Add({});
  } else {
    packets_ = &prometheus::BuildCounter()
                    .Name("flowd_sflow_datagrams_total")
                    .Help("sFlow datagrams received, by agent and sub-agent")
                    .Register(m);
    records_ = &prometheus::BuildCounter()
                    .Name("flowd_sflow_samples_total")
                    .Help("sFlow flow samples decoded, by agent and sub-agent")
                    .Register(m);
    errors_ = &prometheus::BuildCounter()
                   .Name("flowd_sflow_decode_errors_total")
                   .Help("Problems found while decoding sFlow datagrams, by agent and reason")
                   .Register(m);
    lost_ = &prometheus::BuildCounter()
                 .Name("flowd_sflow_sequence_lost_total")
                 .Help("Datagrams missing according to the agents' sequence numbers, by agent")
                 .Register(m);
    folded_ = &prometheus::BuildCounter()
                   .Name("flowd_sflow_agents_folded_total")
                   .Help(
                       "sFlow datagrams counted under agent=\"other\": their agent and sub-agent "
                       "came after max_exporter_series others")
                   .Register(m)
                   .Add({});
  }
  // What a plugin this one replaces (a reload) had named: each named exporter has a losses series
  // from the start (find()), even one named for its restored templates before it sent a packet.
  for (const auto& family : lost_->Collect())
    for (const auto& metric : family.metric) {
      std::string address, domain;
      for (const auto& l : metric.label) {
        if (l.name == address_label_) address = l.value;
        if (l.name == domain_label_) domain = l.value;
      }
      if (!address.empty() && address != "other") before_.emplace(address, domain);
    }
  other_.labels = {{address_label_, "other"}, {domain_label_, ""}};
  // "other" exists from the start, so that every dashboard query has a series to read.
  const std::size_t versions = wire == Wire::kNetflow ? kVersionSlots : 1;
  for (std::size_t v = 0; v < versions; ++v) {
    packets(other_, v);
    records(other_, v);
  }
  lost(other_);
}

prometheus::Labels ExporterSeries::labels_of(const SeriesKey& key) const {
  return {{address_label_, key.address.to_string()},
          {domain_label_, key.has_domain ? std::to_string(key.domain) : std::string()}};
}

ExporterSeries::Found ExporterSeries::find(const SeriesKey& key) {
  std::lock_guard lock(mu_);
  if (auto it = named_.find(key); it != named_.end()) return {it->second.get(), false, false};
  // The cap reached and no exporter of a reload left to come back: "other", without making the
  // label text (a flood of new sources costs a lookup each, not a formatting).
  if (before_.empty() && named_.size() >= cap_) return {&other_, true, true};
  auto labels = labels_of(key);
  const bool named_before =
      before_.erase({labels.at(address_label_), labels.at(domain_label_)}) != 0;
  if (named_before || named_.size() + before_.size() < cap_) {
    auto c = std::make_unique<ExporterCounters>();
    c->labels = std::move(labels);
    // Losses from the start (0), so that a rate over them has a series before the first loss.
    c->lost.store(&lost_->Add(c->labels), std::memory_order_release);
    auto* raw = c.get();
    named_.emplace(key, std::move(c));
    return {raw, false, false};
  }
  return {&other_, true, true};
}

prometheus::Labels ExporterSeries::counted_under(const SeriesKey& key) const {
  std::lock_guard lock(mu_);
  if (auto it = named_.find(key); it != named_.end()) return it->second->labels;
  return other_.labels;
}

prometheus::Counter& ExporterSeries::made(std::atomic<prometheus::Counter*>& slot,
                                          prometheus::Family<prometheus::Counter>& family,
                                          const prometheus::Labels& labels) {
  std::lock_guard lock(mu_);
  if (auto* c = slot.load(std::memory_order_acquire)) return *c;
  auto* c = &family.Add(labels);
  slot.store(c, std::memory_order_release);
  return *c;
}

prometheus::Counter& ExporterSeries::packets(ExporterCounters& c, std::size_t v) {
  if (auto* p = c.packets[v].load(std::memory_order_acquire)) return *p;
  if (wire_ == Wire::kSflow) return made(c.packets[v], *packets_, c.labels);
  prometheus::Labels l = c.labels;
  l.emplace("version", std::string(kVersions[v]));
  return made(c.packets[v], *packets_, l);
}

prometheus::Counter& ExporterSeries::records(ExporterCounters& c, std::size_t v) {
  if (auto* p = c.records[v].load(std::memory_order_acquire)) return *p;
  if (wire_ == Wire::kSflow) return made(c.records[v], *records_, c.labels);
  prometheus::Labels l = c.labels;
  l.emplace("version", std::string(kVersions[v]));
  return made(c.records[v], *records_, l);
}

prometheus::Counter& ExporterSeries::lost(ExporterCounters& c) {
  if (auto* p = c.lost.load(std::memory_order_acquire)) return *p;
  return made(c.lost, *lost_, c.labels);
}

prometheus::Counter& ExporterSeries::error(ExporterCounters& c, std::size_t v, std::size_t reason) {
  const std::size_t slot =
      wire_ == Wire::kSflow ? reason : v * collector::kDecodeErrorCount + reason;
  if (auto* p = c.errors[slot].load(std::memory_order_acquire)) return *p;
  prometheus::Labels l = c.labels;
  if (wire_ == Wire::kSflow) {
    l.emplace("reason",
              std::string(collector::to_string(static_cast<collector::SflowError>(reason))));
  } else {
    l.emplace("version", std::string(kVersions[v]));
    l.emplace("reason",
              std::string(collector::to_string(static_cast<collector::DecodeError>(reason))));
  }
  return made(c.errors[slot], *errors_, l);
}

}  // namespace flowd::netflow
