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

#include "flowd/scitags_label.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/netflow/label_policy.hpp"

namespace flowd::netflow {

// The `source` label: which kind of export the traffic was read from.
enum class ObservedSource : std::uint8_t { kNetflow, kIpfix, kSflow };
inline constexpr std::size_t kObservedSourceCount = 3;
std::string_view to_string(ObservedSource s);

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
  void add(ObservedSource source, const std::optional<LabelTag>& tag, double bytes, double packets);
  const std::vector<ObservedMetrics::Volume>& items() const { return items_; }
  void clear() { items_.clear(); }

 private:
  std::vector<ObservedMetrics::Volume> items_;  // a handful of entries: a linear scan beats a map
};

}  // namespace flowd::netflow
