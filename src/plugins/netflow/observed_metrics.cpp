// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/observed_metrics.hpp"

#include "collector/ie_ids.hpp"

namespace flowd::netflow {
namespace {

constexpr std::uint16_t kNone = 0xFFFF, kOther = 0xFFFE;

}  // namespace

std::string_view to_string(ObservedSource s) {
  switch (s) {
    case ObservedSource::kNetflow:
      return "netflow";
    case ObservedSource::kIpfix:
      return "ipfix";
    case ObservedSource::kSflow:
      return "sflow";
  }
  return "netflow";
}

ObservedMetrics::ObservedMetrics(prometheus::Registry& registry)
    : bytes_(prometheus::BuildCounter()
                 .Name("flowd_observed_bytes_total")
                 .Help("Bytes of observed traffic (exports and sFlow samples, scaled by the "
                       "sampling rate), by "
                       "Scitags experiment and activity; experiment=\"none\" is untagged traffic")
                 .Register(registry)),
      packets_(prometheus::BuildCounter()
                   .Name("flowd_observed_packets_total")
                   .Help("Packets of observed traffic (scaled by the sampling rate), by Scitags "
                         "experiment and "
                         "activity; experiment=\"none\" is untagged traffic")
                   .Register(registry)) {
  auto& family =
      prometheus::BuildCounter()
          .Name("flowd_observed_labels_total")
          .Help(
              "IPv6 flow labels seen in exports and sFlow samples, by what they turned out to be "
              "(tag, unregistered, outside label_networks, unstable, none)")
          .Register(registry);
  for (std::size_t i = 0; i < kLabelResultCount; ++i)
    labels_[i] = &family.Add({{"result", std::string(to_string(static_cast<LabelResult>(i)))}});
}

ObservedMetrics::Pair& ObservedMetrics::series(ObservedSource source,
                                               const std::optional<LabelTag>& tag,
                                               const ScitagsRegistry* registry) {
  std::uint16_t e = kNone, a = kNone;
  if (tag)
    e = static_cast<std::uint16_t>(tag->experiment), a = static_cast<std::uint16_t>(tag->activity);
  auto key = std::make_tuple(static_cast<std::uint8_t>(source), e, a);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  std::string exp = "none", act = "none";
  if (tag) {
    if (tag_series_ >= kMaxTagSeries) {
      // Past the cap (only reachable with label_trust = any): one bucket for the rest.
      return series_other(source);
    }
    ++tag_series_;
    exp = registry ? registry->experiment_name(tag->experiment) : std::to_string(tag->experiment);
    act = registry ? registry->activity_name(tag->experiment, tag->activity)
                   : std::to_string(tag->activity);
  }
  const prometheus::Labels labels{
      {"experiment", exp}, {"activity", act}, {"source", std::string(to_string(source))}};
  return cache_.emplace(key, Pair{&bytes_.Add(labels), &packets_.Add(labels)}).first->second;
}

ObservedMetrics::Pair& ObservedMetrics::series_other(ObservedSource source) {
  auto key = std::make_tuple(static_cast<std::uint8_t>(source), kOther, kOther);
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  const prometheus::Labels labels{
      {"experiment", "other"}, {"activity", "other"}, {"source", std::string(to_string(source))}};
  return cache_.emplace(key, Pair{&bytes_.Add(labels), &packets_.Add(labels)}).first->second;
}

void ObservedMetrics::add(const std::vector<Volume>& batch,
                          const std::shared_ptr<const ScitagsRegistry>& registry) {
  std::lock_guard lock(mu_);
  for (const auto& v : batch) add_locked(v, registry.get());
}

void ObservedMetrics::add_locked(const Volume& v, const ScitagsRegistry* registry) {
  Pair& p = series(v.source, v.tag, registry);
  if (v.bytes > 0) p.bytes->Increment(v.bytes);
  if (v.packets > 0) p.packets->Increment(v.packets);
}

void ObservedMetrics::add(const VolumeBatch& batch,
                          const std::shared_ptr<const ScitagsRegistry>& registry) {
  std::lock_guard lock(mu_);
  batch.for_each([&](const Volume& v) { add_locked(v, registry.get()); });
}

void VolumeBatch::add_tagged(ObservedSource source, LabelTag tag, double bytes, double packets) {
  for (auto& v : tagged_) {
    if (v.source == source && v.tag->experiment == tag.experiment &&
        v.tag->activity == tag.activity) {
      v.bytes += bytes;
      v.packets += packets;
      return;
    }
  }
  tagged_.push_back({source, tag, bytes, packets});
}

std::vector<ObservedMetrics::Volume> VolumeBatch::items() const {
  std::vector<ObservedMetrics::Volume> all;
  for_each([&](const ObservedMetrics::Volume& v) { all.push_back(v); });
  return all;
}

void VolumeBatch::scan(const collector::FlowRecord& rec, double& bytes, double& packets) {
  bytes = 0;
  packets = 0;
  for (const auto& f : rec.fields) {
    if (f.pen != 0 || f.value.kind != collector::ValueKind::kUnsigned) continue;
    if (f.id == collector::ie::kOctetDeltaCount || f.id == collector::ie::kOctetTotalCount)
      bytes = bytes > 0 ? bytes : static_cast<double>(f.value.u);
    if (f.id == collector::ie::kPacketDeltaCount || f.id == collector::ie::kPacketTotalCount)
      packets = packets > 0 ? packets : static_cast<double>(f.value.u);
  }
}

}  // namespace flowd::netflow
