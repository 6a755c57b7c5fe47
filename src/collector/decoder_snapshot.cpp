// SPDX-License-Identifier: Apache-2.0
// Taking a decoder's learnt state out (snapshot) and back in (restore), for templates that survive
// a restart (issue 16 §3). A restored template is rebuilt the way the v9 and IPFIX parsers build
// one, so that a file cannot give the decoder anything the wire could not.
#include "collector/decoder_snapshot.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <map>

#include "collector/decoder_state.hpp"
#include "collector/template_budget.hpp"

namespace flowd::collector {
namespace {

// An IPFIX template set holds at most (65535 - 16 - 4) / 4 field specifiers; a v9 one fewer.
constexpr std::size_t kMaxFields = (65535 - 16 - 4) / 4;

SavedOwner owner_of(const TemplateKey& k) {
  SavedOwner o;
  o.exporter.family = k.exporter.family;
  o.exporter.bytes = k.exporter.addr;
  o.port = k.exporter.port;
  o.version = k.version;
  o.domain = k.domain;
  return o;
}

std::optional<TemplateKey> key_of(const SavedOwner& o, std::uint16_t id) {
  if (o.exporter.family != AF_INET && o.exporter.family != AF_INET6) return std::nullopt;
  if (o.version != 9 && o.version != 10) return std::nullopt;
  if (o.version == 9 && o.port != 0) return std::nullopt;  // v9 keys by address only
  TemplateKey k;
  k.exporter.family = o.exporter.family;
  k.exporter.addr = o.exporter.bytes;
  k.exporter.port = o.port;
  k.version = o.version;
  k.domain = o.domain;
  k.id = id;
  return k;
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xff));
}

// The template record as an IPFIX exporter sends it (RFC 7011 §3.4.1, §3.4.2.2), which is what the
// decoder compares resends with.
std::vector<std::uint8_t> ipfix_record(const SavedTemplate& s) {
  std::vector<std::uint8_t> raw;
  put16(raw, s.id);
  put16(raw, static_cast<std::uint16_t>(s.fields.size()));
  if (s.options) put16(raw, s.scope_count);
  for (const auto& f : s.fields) {
    put16(raw, static_cast<std::uint16_t>(f.id | (f.pen ? 0x8000 : 0)));
    put16(raw, f.length);
    if (f.pen) {
      put16(raw, static_cast<std::uint16_t>(f.pen >> 16));
      put16(raw, static_cast<std::uint16_t>(f.pen & 0xffff));
    }
  }
  return raw;
}

// The template `s` describes, as the v9 or IPFIX parser would have built it; nullopt when no
// well-formed export could have defined it.
std::optional<Template> rebuild(const SavedTemplate& s) {
  if (s.id < 256 || s.fields.empty() || s.fields.size() > kMaxFields) return std::nullopt;
  Template t;
  t.options = s.options;
  t.scope_count = s.scope_count;
  if (s.options ? (s.scope_count == 0 || s.scope_count > s.fields.size()) : s.scope_count != 0)
    return std::nullopt;
  const bool ipfix = s.owner.version == 10;
  t.fields.reserve(s.fields.size());
  for (const auto& f : s.fields) {
    FieldSpec spec;
    spec.pen = f.pen;
    spec.id = f.id;
    spec.length = f.length;
    if (ipfix) {
      if (f.id > 0x7FFF) return std::nullopt;  // the enterprise bit is not part of the id
      spec.type = ie_type(f.pen, f.id);
      t.min_record += f.length == kVariableLength ? 1 : f.length;
    } else {
      if (f.pen != 0) return std::nullopt;  // v9 has no enterprise numbers
      spec.type = f.id >= 32768 ? IeType::kOctetArray : ie_type(0, f.id);
      t.min_record += f.length;
    }
    t.fields.push_back(spec);
  }
  if (t.min_record == 0) return std::nullopt;
  if (ipfix) t.raw = ipfix_record(s);
  index_layout(t);
  return t;
}

}  // namespace

DecoderSnapshot Decoder::snapshot() const {
  static_assert(kMaxSnapshotDomains == State::kMaxDomains);
  static_assert(kMaxSnapshotRates == DomainState::kMaxRates);
  const State& s = *state_;
  DecoderSnapshot out;
  s.templates.for_each([&](const TemplateKey& k, const Template& t) {
    SavedTemplate st;
    st.owner = owner_of(k);
    st.id = k.id;
    st.options = t.options;
    st.scope_count = t.scope_count;
    st.seen = t.seen;
    st.fields.reserve(t.fields.size());
    for (const auto& f : t.fields) st.fields.push_back({f.pen, f.id, f.length});
    out.templates.push_back(std::move(st));
  });
  for (const auto& [k, d] : s.domains) {
    if (!d.system_init_ms && !d.default_rate && d.rates.empty()) continue;
    SavedDomain sd;
    sd.owner = owner_of(k);
    sd.seen = d.seen;
    sd.system_init_ms = d.system_init_ms;
    sd.default_rate = d.default_rate;
    sd.rates.assign(d.rates.begin(), d.rates.end());
    out.domains.push_back(std::move(sd));
  }
  return out;
}

RestoreResult Decoder::restore(const DecoderSnapshot& saved, TimePoint now) {
  State& s = *state_;
  RestoreResult r;
  // A time ahead of now (the clock was set back) counts as now: the lifetime is not stretched.
  auto age_ok = [&](TimePoint& seen) {
    if (seen > now) seen = now;
    return now - seen <= s.limits.template_timeout;
  };
  std::vector<TemplateKey> stored;
  DecodeResult bounds;  // what the bounds refused and evicted, over every store
  for (const auto& st : saved.templates) {
    TimePoint seen = st.seen;
    if (!age_ok(seen)) {
      ++r.expired;
      continue;
    }
    const auto key = key_of(st.owner, st.id);
    auto t = key ? rebuild(st) : std::nullopt;
    if (!t) {
      ++r.invalid;
      continue;
    }
    if (s.templates.store(*key, std::move(*t), seen, bounds)) stored.push_back(*key);
  }
  // A later template may have evicted an earlier one: what is kept is what is still there.
  std::sort(stored.begin(), stored.end());
  stored.erase(std::unique(stored.begin(), stored.end()), stored.end());
  for (const auto& k : stored)
    if (s.templates.contains(k)) ++r.templates;
  r.refused_max_templates =
      bounds.templates_refused[static_cast<std::size_t>(TemplateRefusal::kMaxTemplates)];
  r.refused_too_large =
      bounds.templates_refused[static_cast<std::size_t>(TemplateRefusal::kTooLarge)];
  r.evicted_exporter_bytes =
      bounds.templates_evicted[static_cast<std::size_t>(TemplateEviction::kExporterBytes)];
  r.evicted_total_bytes =
      bounds.templates_evicted[static_cast<std::size_t>(TemplateEviction::kTotalBytes)];
  for (const auto& sd : saved.domains) {
    TimePoint seen = sd.seen;
    if (!age_ok(seen)) {
      ++r.expired;
      continue;
    }
    const auto key = key_of(sd.owner, 0);
    if (!key || (!s.domains.contains(*key) && s.domains.size() >= State::kMaxDomains)) {
      ++r.invalid;
      continue;
    }
    DomainState& d = s.domains[*key];
    d.seen = std::max(d.seen, seen);
    if (sd.system_init_ms) d.system_init_ms = sd.system_init_ms;
    if (sd.default_rate && *sd.default_rate > 0) d.default_rate = sd.default_rate;
    for (const auto& [id, rate] : sd.rates) {
      if (rate == 0) continue;
      if (d.rates.size() >= DomainState::kMaxRates && !d.rates.contains(id)) break;
      d.rates[id] = rate;
    }
    ++r.domains;
  }
  return r;
}

DecoderSnapshot merge_snapshots(std::vector<DecoderSnapshot> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  auto owner_key = [](const SavedOwner& o) {
    return std::tuple(o.exporter.family, o.exporter.bytes, o.port, o.version, o.domain);
  };
  using OwnerKey = decltype(owner_key(SavedOwner{}));
  std::map<std::pair<OwnerKey, std::uint16_t>, SavedTemplate> templates;
  std::map<OwnerKey, SavedDomain> domains;
  for (auto& part : parts) {
    for (auto& t : part.templates) {
      auto& slot = templates[{owner_key(t.owner), t.id}];
      if (slot.fields.empty() || t.seen > slot.seen) slot = std::move(t);
    }
    for (auto& d : part.domains) {
      auto [it, fresh] = domains.try_emplace(owner_key(d.owner), d);
      if (!fresh && d.seen > it->second.seen) it->second = std::move(d);
    }
  }
  DecoderSnapshot out;
  for (auto& [k, t] : templates) out.templates.push_back(std::move(t));
  for (auto& [k, d] : domains) out.domains.push_back(std::move(d));
  return out;
}

std::size_t saved_template_bytes(const SavedTemplate& t) {
  static const std::size_t kEmpty = template_bytes(Template{});
  std::size_t raw = 0;
  if (t.owner.version == 10) {
    raw = 4 + (t.options ? 2 : 0);
    for (const auto& f : t.fields) raw += f.pen ? 8 : 4;
  }
  return kEmpty + t.fields.size() * sizeof(FieldSpec) + raw;
}

std::size_t fit_templates(DecoderSnapshot& s, std::size_t max_bytes) {
  std::size_t total = 0;
  for (const auto& t : s.templates) total += saved_template_bytes(t);
  if (total <= max_bytes) return 0;
  // The most recently seen first; the oldest are what the bounds would have evicted first.
  std::vector<std::size_t> order(s.templates.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return s.templates[a].seen > s.templates[b].seen;
  });
  std::vector<bool> keep(order.size());
  std::size_t kept_bytes = 0;
  for (const std::size_t i : order) {
    const std::size_t bytes = saved_template_bytes(s.templates[i]);
    if (kept_bytes + bytes > max_bytes) break;
    kept_bytes += bytes;
    keep[i] = true;
  }
  std::vector<SavedTemplate> kept;
  for (std::size_t i = 0; i < order.size(); ++i)
    if (keep[i]) kept.push_back(std::move(s.templates[i]));
  const std::size_t left_out = s.templates.size() - kept.size();
  s.templates = std::move(kept);
  return left_out;
}

}  // namespace flowd::collector
