// SPDX-License-Identifier: Apache-2.0
// Sampling: the rates exporters announce in options records (v9 samplingInterval/
// samplerRandomInterval, IPFIX RFC 5477 samplingPacketInterval/Space, keyed by samplerId or
// selectorId), the rate that applies to a data record, and counter scaling (apply_sampling).
#include "collector/decoder_state.hpp"
#include "collector/ie_ids.hpp"

namespace flowd::collector {

bool has_sampling_fields(const std::vector<FieldSpec>& fields) {
  return std::any_of(fields.begin(), fields.end(), [](const FieldSpec& f) {
    return f.pen == 0 &&
           (f.id == ie::kSamplingInterval || f.id == ie::kSamplerId || f.id == ie::kSelectorId);
  });
}

namespace {

std::optional<std::uint64_t> unsigned_field(const FieldWriter& w, std::uint16_t id) {
  const Field* f = w.find(id);
  if (!f || f->value.kind != ValueKind::kUnsigned) return std::nullopt;
  return f->value.u;
}

}  // namespace

void Decoder::State::learn_sampling(const FieldWriter& w, const MessageContext& ctx) {
  std::uint64_t rate = 0;
  if (auto interval = unsigned_field(w, ie::kSamplingPacketInterval); interval && *interval > 0) {
    // RFC 5477 systematic count-based sampling: `interval` packets taken out of interval + space.
    rate = (*interval + unsigned_field(w, ie::kSamplingPacketSpace).value_or(0)) / *interval;
  } else if (auto n = unsigned_field(w, ie::kSamplingInterval); n && *n > 0) {
    rate = *n;
  } else if (auto r = unsigned_field(w, ie::kSamplerRandomInterval); r && *r > 0) {
    rate = *r;
  }
  if (rate == 0) return;
  DomainState& d = domain(ctx.from, ctx.version, ctx.domain, ctx.received);
  auto learn = [&](std::uint64_t id) {
    // Bounded: an options flood naming ever new samplers must not grow the table.
    if (auto it = d.rates.find(id); it != d.rates.end())
      it->second = rate;
    else if (d.rates.size() < DomainState::kMaxRates)
      d.rates.emplace(id, rate);
  };
  if (auto id = unsigned_field(w, ie::kSelectorId)) {
    learn(*id);
  } else if (auto sid = unsigned_field(w, ie::kSamplerId)) {
    learn(*sid);
  } else {
    d.default_rate = rate;
  }
}

std::uint64_t Decoder::State::sampling_rate(const FieldWriter& w, const MessageContext& ctx) {
  if (auto n = unsigned_field(w, ie::kSamplingInterval); n && *n > 0) return *n;
  auto it = domains.find(TemplateKey{exporter_key(ctx.from, ctx.version == 10),
                                     static_cast<std::uint8_t>(ctx.version), ctx.domain, 0});
  if (it == domains.end()) return 0;
  const DomainState& d = it->second;
  auto id = unsigned_field(w, ie::kSelectorId);
  if (!id) id = unsigned_field(w, ie::kSamplerId);
  if (id) {
    auto r = d.rates.find(*id);
    return r != d.rates.end() ? r->second : 0;
  }
  return d.default_rate.value_or(0);
}

void scale_counters(FieldWriter& w, std::uint64_t rate) {
  for (std::size_t i = 0; i < w.size(); ++i) {
    Field& f = w[i];
    if (f.pen != 0 && f.pen != kReversePen) continue;
    // octetDeltaCount, packetDeltaCount, octetTotalCount, packetTotalCount
    if ((f.id == ie::kOctetDeltaCount || f.id == ie::kPacketDeltaCount ||
         f.id == ie::kOctetTotalCount || f.id == ie::kPacketTotalCount) &&
        f.value.kind == ValueKind::kUnsigned)
      f.value.u *= rate;
  }
}

}  // namespace flowd::collector
