// SPDX-License-Identifier: Apache-2.0
// Per-exporter series (issue 16 §2): the packets, records, decode errors and sequence losses of the
// netflow plugin per exporter address and observation domain ({exporter, observation_domain}),
// and of the sflow plugin per agent address and sub-agent ({agent, sub_agent}). At most
// max_exporter_series exporters get series of their own, the first seen first; every other one
// is counted under exporter="other" (agent="other") and in flowd_netflow_exporters_folded_total
// (flowd_sflow_agents_folded_total). docs/metrics-labels.md says why these labels and this bound.
//
// Cost per datagram: a receive worker keeps an ExporterCache, whose lookup is a hash probe of the
// exporter's key (one comparison when the datagram is from the same exporter as the one before);
// the counters themselves are made on their first increment and kept as pointers, so counting is
// an atomic load and a prometheus-cpp Increment. The shared ExporterSeries (and its mutex) is only
// reached on a cache miss.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "collector/decoder.hpp"
#include "collector/sflow.hpp"
#include "flowd/flow_id.hpp"
#include "plugins/netflow/netflow_config.hpp"

namespace flowd::netflow {

// Who a datagram's series belong to: an address and, where the protocol has one, a domain (NetFlow
// v9 source id, IPFIX observation domain id, sFlow sub_agent_id).
struct SeriesKey {
  IpAddress address;
  std::uint32_t domain = 0;
  bool has_domain = false;
  bool operator==(const SeriesKey&) const = default;
};
struct SeriesKeyHash {
  std::size_t operator()(const SeriesKey& k) const noexcept;
};

// NetFlow v9 and IPFIX: the sender's address and the header's source id / observation domain id
// (RFC 3954 §5.1 bytes 16-19, RFC 7011 §3.1 bytes 12-15). v1, v5, other versions and headers too
// short for it: the address alone.
SeriesKey netflow_series_key(std::span<const std::uint8_t> packet, const IpAddress& sender);
// sFlow v5: the header's agent_address and sub_agent_id (sflow_version_5.txt, sample_datagram_v5):
// the agent, even when a relay sent the datagram. A datagram too short, not version 5 or of an
// unknown address type: the sender's address alone.
SeriesKey sflow_series_key(std::span<const std::uint8_t> datagram, const IpAddress& sender);

// One version slot per value of the netflow `version` label (ReceiveMetrics::kVersions).
inline constexpr std::size_t kVersionSlots = 5;
inline constexpr std::array<std::string_view, kVersionSlots> kVersions{"1", "5", "9", "10",
                                                                       "unknown"};
// The slot of an export's version word: 1, 5, 9, 10, anything else "unknown".
std::size_t version_slot(int version);

// The series of one exporter, or of "other". Each pointer is set once, on the counter's first
// increment (under ExporterSeries' mutex), and read without it by every worker.
struct ExporterCounters {
  prometheus::Labels labels;  // {exporter, observation_domain} or {agent, sub_agent}
  std::array<std::atomic<prometheus::Counter*>, kVersionSlots> packets{}, records{};  // sflow: [0]
  std::atomic<prometheus::Counter*> lost{nullptr};
  // netflow: [version slot * kDecodeErrorCount + DecodeError]; sflow: [SflowError]
  std::array<std::atomic<prometheus::Counter*>, kVersionSlots * collector::kDecodeErrorCount>
      errors{};
  static_assert(collector::kSflowErrorCount <= kVersionSlots * collector::kDecodeErrorCount);
};

// The per-exporter series of one netflow or sflow plugin, shared by its receive workers. The
// families live in the registry, which outlives the plugin: a reload makes a new ExporterSeries
// that finds the exporters the old one had named (from the losses family) and keeps them named,
// so that their series go on and the cap still holds across reloads.
class ExporterSeries {
 public:
  // `cap`: max_exporter_series. Registers (or finds) the families and the "other" series.
  ExporterSeries(prometheus::Registry& registry, Wire wire, std::size_t cap);

  struct Found {
    ExporterCounters* counters = nullptr;
    bool folded = false;        // counters is other()
    bool newly_folded = false;  // `key` was looked up and folded now (for a rate-limited log)
  };
  // The counters of `key`: its own, when it has them or the cap leaves room, else other().
  Found find(const SeriesKey& key);

  prometheus::Counter& packets(ExporterCounters& c, std::size_t version_slot);
  prometheus::Counter& records(ExporterCounters& c, std::size_t version_slot);
  prometheus::Counter& lost(ExporterCounters& c);
  // netflow: `reason` of `version_slot`; sflow: `reason` is a SflowError (version_slot unused).
  prometheus::Counter& error(ExporterCounters& c, std::size_t version_slot, std::size_t reason);
  // One datagram (export packet) counted under "other".
  void count_folded() { folded_->Increment(); }

  ExporterCounters& other() { return other_; }
  const ExporterCounters& other() const { return other_; }
  bool is_other(const ExporterCounters& c) const { return &c == &other_; }
  std::size_t cap() const { return cap_; }
  // Exporters with series of their own now (more than cap() after a reload lowered it: those keep
  // theirs).
  std::size_t named() const {
    std::lock_guard lock(mu_);
    return named_.size();
  }
  Wire wire() const { return wire_; }
  // The label values of `key` ({address, domain}): the text an exporter's series carry.
  prometheus::Labels labels_of(const SeriesKey& key) const;
  // The labels `key` is counted under, its own or other's (the template gauge, at scrape time).
  prometheus::Labels counted_under(const SeriesKey& key) const;

 private:
  prometheus::Counter& made(std::atomic<prometheus::Counter*>& slot,
                            prometheus::Family<prometheus::Counter>& family,
                            const prometheus::Labels& labels);

  const Wire wire_;
  const std::size_t cap_;
  const std::string address_label_, domain_label_;
  prometheus::Family<prometheus::Counter>*packets_ = nullptr, *records_ = nullptr, *lost_ = nullptr,
  *errors_ = nullptr;
  prometheus::Counter* folded_ = nullptr;
  mutable std::mutex mu_;
  std::unordered_map<SeriesKey, std::unique_ptr<ExporterCounters>, SeriesKeyHash> named_;
  // Label values the registry held series for when this instance started (a reload): those
  // exporters keep their series, and count towards the cap.
  std::set<std::pair<std::string, std::string>> before_;
  ExporterCounters other_;
};

// One receive worker's view of an ExporterSeries: the counters of the exporters it has seen.
// Bounded: past kMaxEntries (exporters under "other" are cached too) it starts again empty.
class ExporterCache {
 public:
  explicit ExporterCache(ExporterSeries& series) : series_(&series) {}

  // The counters of `key`; `newly_folded` as ExporterSeries::Found says.
  ExporterCounters& get(const SeriesKey& key, bool& newly_folded) {
    newly_folded = false;
    if (last_ && last_key_ == key) return *last_;
    auto it = map_.find(key);
    if (it == map_.end()) {
      if (map_.size() >= kMaxEntries) map_.clear();
      const auto found = series_->find(key);
      newly_folded = found.newly_folded;
      it = map_.emplace(key, found.counters).first;
    }
    last_key_ = key;
    last_ = it->second;
    return *last_;
  }

  static constexpr std::size_t kMaxEntries = 8192;

 private:
  ExporterSeries* series_;
  std::unordered_map<SeriesKey, ExporterCounters*, SeriesKeyHash> map_;
  SeriesKey last_key_;
  ExporterCounters* last_ = nullptr;
};

}  // namespace flowd::netflow
