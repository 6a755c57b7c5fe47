// SPDX-License-Identifier: Apache-2.0
// What observed traffic (NetFlow/IPFIX records, sFlow samples) says per Scitags experiment and
// activity: flowd_observed_labels_total{result}, flowd_observed_bytes_total and
// flowd_observed_packets_total{experiment,activity,source}. Untagged traffic is one series with
// experiment="none", activity="none", so the tagged share can be read off.
//
// Label values are registry names (numbers for unregistered pairs under label_trust = any), at most
// kMaxTagSeries pairs per plugin instance; traffic of further pairs goes to experiment="other".
// Families are registered with prometheus-cpp's Merge behaviour, so the netflow and sflow plugins
// share them. Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "collector/flow_record.hpp"
#include "flowd/scitags_label.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/netflow/label_policy.hpp"

namespace flowd::netflow {

// The `source` label: which kind of export the traffic was read from.
enum class ObservedSource : std::uint8_t { kNetflow, kIpfix, kSflow };
inline constexpr std::size_t kObservedSourceCount = 3;
std::string_view to_string(ObservedSource s);

class VolumeBatch;

class ObservedMetrics {
 public:
  static constexpr std::size_t kMaxTagSeries = 512;

  explicit ObservedMetrics(prometheus::Registry& registry);

  // Traffic of one batch, summed per (source, tag) by the caller's VolumeBatch.
  struct Volume {
    ObservedSource source;
    std::optional<LabelTag> tag;
    double bytes = 0, packets = 0;
  };
  void add(const std::vector<Volume>& batch,
           const std::shared_ptr<const ScitagsRegistry>& registry);
  void add(const VolumeBatch& batch, const std::shared_ptr<const ScitagsRegistry>& registry);
  void count_label(LabelResult r, double n = 1) {
    labels_[static_cast<std::size_t>(r)]->Increment(n);
  }

 private:
  struct Pair {
    prometheus::Counter* bytes;
    prometheus::Counter* packets;
  };
  Pair& series(ObservedSource source, const std::optional<LabelTag>& tag,
               const ScitagsRegistry* registry);
  Pair& series_other(ObservedSource source);
  void add_locked(const Volume& v, const ScitagsRegistry* registry);

  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& packets_;
  std::array<prometheus::Counter*, kLabelResultCount> labels_{};
  std::mutex mu_;
  // (source, experiment, activity) -> counters; experiment 0xFFFF = none, 0xFFFE = other.
  std::map<std::tuple<std::uint8_t, std::uint16_t, std::uint16_t>, Pair> cache_;
  std::size_t tag_series_ = 0;
};

// Sums a batch's traffic per (source, tag) before ObservedMetrics::add takes its lock once.
class VolumeBatch {
 public:
  void add(ObservedSource source, const std::optional<LabelTag>& tag, double bytes,
           double packets) {
    if (!tag) {
      // Untagged: nearly all traffic, one sum per source.
      auto& n = none_[static_cast<std::size_t>(source)];
      n.bytes += bytes;
      n.packets += packets;
      n.seen = true;
      return;
    }
    add_tagged(source, *tag, bytes, packets);
  }
  // A data record's octets and packets (octetDelta/TotalCount, packetDelta/TotalCount), scaled by
  // its sampling rate unless the decoder did; nothing when it has neither. Inline: it runs for
  // every record.
  [[gnu::always_inline]] void add(const collector::FlowRecord& rec,
                                  const std::optional<LabelTag>& tag) {
    using collector::KeyFields;
    double bytes, packets;
    if (rec.keys.known) {
      // No repeated counter element (KeyFields): the first non-zero of the two is what scan()
      // finds.
      bytes = first_nonzero(rec.key(KeyFields::kOctetDelta), rec.key(KeyFields::kOctetTotal));
      packets = first_nonzero(rec.key(KeyFields::kPacketDelta), rec.key(KeyFields::kPacketTotal));
    } else {
      scan(rec, bytes, packets);
    }
    if (bytes == 0 && packets == 0) return;
    if (!rec.counters_scaled && rec.sampling_rate > 1) {
      bytes *= static_cast<double>(rec.sampling_rate);
      packets *= static_cast<double>(rec.sampling_rate);
    }
    const ObservedSource source = rec.protocol == collector::ExportProtocol::kSflow
                                      ? ObservedSource::kSflow
                                  : rec.version == 10 ? ObservedSource::kIpfix
                                                      : ObservedSource::kNetflow;
    add(source, tag, bytes, packets);
  }
  // The sums: tagged ones in the order they were first seen, then the untagged one of each source.
  template <typename F>
  void for_each(F f) const {
    for (const auto& v : tagged_) f(v);
    for (std::size_t s = 0; s < none_.size(); ++s)
      if (none_[s].seen)
        f(ObservedMetrics::Volume{static_cast<ObservedSource>(s), std::nullopt, none_[s].bytes,
                                  none_[s].packets});
  }
  std::vector<ObservedMetrics::Volume> items() const;
  void clear() {
    tagged_.clear();
    none_ = {};
  }

 private:
  struct Sum {
    double bytes = 0, packets = 0;
    bool seen = false;
  };
  void add_tagged(ObservedSource source, LabelTag tag, double bytes, double packets);
  // The first non-zero unsigned value of two elements, in field order (either may be absent).
  static double first_nonzero(const collector::Field* a, const collector::Field* b) {
    if (a && b && b < a) std::swap(a, b);
    if (a && a->value.kind == collector::ValueKind::kUnsigned && a->value.u > 0)
      return static_cast<double>(a->value.u);
    if (b && b->value.kind == collector::ValueKind::kUnsigned && b->value.u > 0)
      return static_cast<double>(b->value.u);
    return 0;
  }
  // The counters of a record whose key positions are not known: the first non-zero of each pair.
  static void scan(const collector::FlowRecord& rec, double& bytes, double& packets);
  std::vector<ObservedMetrics::Volume> tagged_;  // a handful of entries: a linear scan beats a map
  std::array<Sum, kObservedSourceCount> none_{};
};

}  // namespace flowd::netflow
