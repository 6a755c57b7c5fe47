// SPDX-License-Identifier: Apache-2.0
// What a UDP decoder has learnt from its exporters and what a restart would otherwise lose: the
// templates (RFC 3954 §5.2, RFC 7011 §8) with the time each was last defined or refreshed, and per
// observation domain the sampling rates options records announced and the IPFIX
// systemInitTimeMilliseconds. Plain data, so that the netflow plugin can keep it in work_dir
// (plugins/netflow/template_file) and give it back to a new decoder at start (issue 16 §3).
//
// Only UDP state: an IPFIX-over-TCP session starts fresh (RFC 7011 §8: its templates end with the
// session), and sequence numbers are not kept (what was lost while flowd was down is unknown).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "collector/flow_record.hpp"

namespace flowd::collector {

// One field specifier as the decoder keeps it: v9 options scopes already mapped to their IPFIX
// elements (netflow_v9.cpp), length 65535 = IPFIX variable length.
struct SavedField {
  std::uint32_t pen = 0;
  std::uint16_t id = 0;
  std::uint16_t length = 0;
  bool operator==(const SavedField&) const = default;
};

// Who a template or a domain's state belongs to: the exporter's address, its source port for IPFIX
// (RFC 7011 §8.4) and 0 for v9 (RFC 3954 keys by address), the version (9 or 10) and the
// observation domain / source id.
struct SavedOwner {
  IpAddress exporter;
  std::uint16_t port = 0;
  std::uint8_t version = 0;
  std::uint32_t domain = 0;
  bool operator==(const SavedOwner&) const = default;
};

struct SavedTemplate {
  SavedOwner owner;
  std::uint16_t id = 0;  // >= 256
  bool options = false;
  std::uint16_t scope_count = 0;  // options templates: the first scope_count fields are scopes
  std::vector<SavedField> fields;
  TimePoint seen{};  // last definition or refresh: the lifetime left is template_timeout - age
};

struct SavedDomain {
  SavedOwner owner;
  TimePoint seen{};
  std::optional<std::uint64_t> system_init_ms;
  std::optional<std::uint64_t> default_rate;                   // 1-in-N for every sampler
  std::vector<std::pair<std::uint64_t, std::uint64_t>> rates;  // sampler/selector id -> 1-in-N
};

struct DecoderSnapshot {
  std::vector<SavedTemplate> templates;
  std::vector<SavedDomain> domains;  // only those with sampling or init-time state
};

// What Decoder::restore did with a snapshot.
struct RestoreResult {
  std::size_t templates = 0;  // kept: stored, and not evicted by a later one of the same snapshot
  std::size_t domains = 0;    // sampling/init-time state taken back
  std::size_t expired = 0;    // older than template_timeout: left out
  std::size_t invalid = 0;  // not a template the wire could have carried; domains past kMaxDomains
  // Templates the bounds refused (max_templates of their exporter; larger alone than
  // max_template_bytes_per_exporter), and evictions the byte bounds made to store them
  // (max_template_bytes_per_exporter, max_template_bytes), of this decoder's templates or of
  // another's sharing the budget.
  std::size_t refused_max_templates = 0;
  std::size_t refused_too_large = 0;
  std::size_t evicted_exporter_bytes = 0;
  std::size_t evicted_total_bytes = 0;
};

// Keeps, of templates and domains saved by several decoders (one per receive worker), the most
// recently seen entry per key.
DecoderSnapshot merge_snapshots(std::vector<DecoderSnapshot> parts);

// The most one decoder's snapshot holds: domains (Decoder::State::kMaxDomains) and sampler rates
// per domain (DomainState::kMaxRates).
inline constexpr std::size_t kMaxSnapshotDomains = 1024;
inline constexpr std::size_t kMaxSnapshotRates = 256;

// The least the template bounds charge for `t` once taken back: template_bytes()
// (template_budget.hpp) of the template Decoder::restore rebuilds from it, were every vector's
// capacity its size (field specifiers; IPFIX: the template record, 4 bytes, 2 more for an options
// template, and 4 per field, 8 with an enterprise number). Bytes.
std::size_t saved_template_bytes(const SavedTemplate& t);

// Keeps of `s`'s templates the most recently seen whose saved_template_bytes() add up to at most
// `max_bytes`, in their order; returns how many it left out. One decoder's snapshot always fits its
// bounds' max_template_bytes; several taken at different times (one per receive worker) may not.
std::size_t fit_templates(DecoderSnapshot& s, std::size_t max_bytes);

}  // namespace flowd::collector
