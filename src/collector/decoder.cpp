// SPDX-License-Identifier: Apache-2.0
// Decoder: the facade (version dispatch, expiry, counts), sequence tracking and the data-record
// loop shared by v9 (netflow_v9.cpp) and IPFIX (ipfix.cpp). Value decoding is values.hpp, derived
// times values.cpp, templates and held data template_store.cpp, sampling sampling.cpp.
#include "collector/decoder.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include <sys/socket.h>  // AF_INET6 (the constant only)

#include "collector/decoder_state.hpp"
#include "collector/ie_ids.hpp"
#include "collector/relative_time.hpp"

namespace flowd::collector {

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::kTooShort:
      return "too_short";
    case DecodeError::kBadVersion:
      return "bad_version";
    case DecodeError::kBadLength:
      return "bad_length";
    case DecodeError::kBadSetLength:
      return "bad_set_length";
    case DecodeError::kBadTemplate:
      return "bad_template";
    case DecodeError::kBadRecord:
      return "bad_record";
    case DecodeError::kTemplateLimit:
      return "template_limit";
    case DecodeError::kPendingOverflow:
      return "pending_overflow";
    case DecodeError::kWithdrawalIgnored:
      return "withdrawal_ignored";
    case DecodeError::kWithdrawnTemplate:
      return "withdrawn_template";
    case DecodeError::kNoTemplate:
      return "no_template";
  }
  return "unknown";
}

KeyFields key_fields_of(const std::vector<FieldSpec>& fields) {
  return KeyFields::of(
      fields, [](const FieldSpec& f) { return f.pen; }, [](const FieldSpec& f) { return f.id; });
}

ExporterKey exporter_key(const Exporter& from, bool with_port) {
  ExporterKey k;
  k.family = from.address.family;
  k.addr = from.address.bytes;
  k.port = with_port ? from.port : 0;
  return k;
}

// ---- sequence numbers
// ----------------------------------------------------------------------------

DomainState& Decoder::State::domain(const Exporter& from, int version, std::uint32_t id,
                                    TimePoint now) {
  const TemplateKey key{exporter_key(from, version == 10), static_cast<std::uint8_t>(version), id,
                        0};
  auto it = domains.find(key);
  if (it == domains.end()) {
    if (domains.size() >= kMaxDomains) {
      ++domains_untracked;
      untracked = DomainState{};
      untracked.seen = now;
      return untracked;
    }
    it = domains.emplace(key, DomainState{}).first;
  }
  DomainState& d = it->second;
  if (now > d.seen) d.seen = now;
  return d;
}

void Decoder::State::check_sequence(DomainState& d, std::uint32_t seq,
                                    std::optional<std::uint32_t> next, DecodeResult& result) {
  if (d.expected) {
    const std::uint32_t diff = seq - *d.expected;  // mod 2^32
    // A forward gap is loss; a backward jump (diff >= 2^31) is an exporter restart or reordering.
    if (diff != 0 && diff < 0x80000000u) result.sequence_lost += diff;
  }
  d.expected = next;
}

// ---- data records
// --------------------------------------------------------------------------------

bool Decoder::State::decode_data_set(const Template& t, std::uint16_t template_id, Bytes body,
                                     const MessageContext& ctx, RecordBatch& out,
                                     std::size_t& count) {
  count = 0;
  if (t.min_record == 0) return false;
  std::size_t off = 0;
  const std::size_t size = body.size();
  const bool ipfix = ctx.version == 10;
  // The domain's state (systemInitTimeMilliseconds), looked up once per set.
  DomainState& dom = domain(ctx.from, ctx.version, ctx.domain, ctx.received);
  // Trailing bytes shorter than the minimum record are padding.
  while (size - off >= t.min_record) {
    const std::size_t mark = out.size();
    FlowRecord& rec = out.next();
    rec.exporter = ctx.from;
    rec.received = ctx.received;
    rec.protocol = ExportProtocol::kNetflow;  // the slot may have held an sFlow record
    rec.version = ctx.version;
    rec.domain = ctx.domain;
    rec.template_id = template_id;
    rec.options = t.options;
    rec.keys = t.keys;  // data fields are written in template order, derived times after them
    FieldWriter w(rec);
    for (const FieldSpec& fs : t.fields) {
      std::size_t len = fs.length;
      if (ipfix && fs.length == kVariableLength) {
        if (off >= size) return out.truncate(mark), false;
        len = body[off++];
        if (len == 255) {
          if (size - off < 2) return out.truncate(mark), false;
          len = get16(&body[off]);
          off += 2;
        }
      }
      if (size - off < len) return out.truncate(mark), false;
      Field& f = w.next();
      f.pen = fs.pen;
      f.id = fs.id;
      decode_value(fs.type, body.data() + off, len, f.value);
      off += len;
    }
    if (ipfix && t.options) {
      if (const Field* f = w.find(ie::kSystemInitTimeMilliseconds);
          f && f->value.kind == ValueKind::kDateTime)
        dom.system_init_ms = f->value.u;
    } else if (t.relative_times.any()) {
      TimeBase base;
      base.export_ms = std::int64_t{ctx.unix_secs} * 1000;
      if (ipfix) {
        base.export_secs = ctx.unix_secs;
        if (dom.system_init_ms)
          base.uptime_ms =
              uptime_at_export(base.export_ms, static_cast<std::int64_t>(*dom.system_init_ms));
      } else {
        base.uptime_ms = ctx.sys_uptime;
      }
      derive_absolute_times(w, base, t.relative_times);
    }
    // The rate is always known to the record (observed-traffic volume scales by it); the counters
    // themselves are scaled only with apply_sampling.
    if (t.options) {
      learn_sampling(w, ctx);
      rec.sampling_rate = 0;
      rec.counters_scaled = false;
    } else {
      const std::uint64_t rate =
          t.sampling_fields ? sampling_rate(w, ctx) : dom.default_rate.value_or(0);
      rec.sampling_rate = rate;
      rec.counters_scaled = limits.apply_sampling && rate > 1;
      if (rec.counters_scaled) scale_counters(w, rate);
    }
    w.finish();
    ++count;
  }
  return true;
}

// ---- Decoder
// -------------------------------------------------------------------------------------

Decoder::Decoder(DecoderLimits limits) : state_(std::make_unique<State>()) {
  state_->limits = limits;
  state_->templates = TemplateStore(limits);
}
Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

DecodeResult Decoder::decode(std::span<const std::uint8_t> packet, const Exporter& from,
                             TimePoint now, RecordBatch& out) {
  DecodeResult result;
  for (std::size_t n = state_->drop_old_pending(now); n > 0; --n)
    result.errors.push_back(DecodeError::kPendingOverflow);
  if (packet.size() < 2) {
    result.errors.push_back(DecodeError::kTooShort);
    return result;
  }
  result.version = get16(packet.data());
  switch (result.version) {
    case 1:
    case 5:
      state_->decode_v1v5(packet, from, now, out, result);
      break;
    case 9:
      state_->decode_v9(packet, from, now, out, result);
      break;
    case 10:
      state_->decode_ipfix(packet, from, now, out, result);
      break;
    default:
      result.errors.push_back(DecodeError::kBadVersion);
      break;
  }
  return result;
}

std::size_t Decoder::expire(TimePoint now) {
  State& s = *state_;
  s.templates.expire(now);
  if (s.limits.udp) {
    // Sequence, sampling and init-time state of exporters gone silent: exporters that restart with
    // a new source port would otherwise grow this map for as long as the collector runs.
    std::erase_if(s.domains,
                  [&](const auto& kv) { return now - kv.second.seen > s.limits.template_timeout; });
  }
  return s.drop_old_pending(now);
}

std::size_t Decoder::template_count() const {
  return state_->templates.size();
}
void Decoder::count_templates(std::vector<DomainTemplates>& out) const {
  const std::size_t first = out.size();
  state_->templates.for_each([&](const TemplateKey& k, const Template&) {
    if (out.size() > first) {
      DomainTemplates& last = out.back();
      if (last.domain == k.domain && last.address.family == k.exporter.family &&
          last.address.bytes == k.exporter.addr) {
        ++last.templates;
        return;
      }
    }
    DomainTemplates d;
    d.address.family = k.exporter.family;
    d.address.bytes = k.exporter.addr;
    d.domain = k.domain;
    d.templates = 1;
    out.push_back(d);
  });
}

std::size_t Decoder::pending_count() const {
  return state_->pending.size();
}
std::size_t Decoder::pending_bytes() const {
  return state_->pending_bytes;
}
std::size_t Decoder::exporter_state_count() const {
  return state_->domains.size();
}

void Decoder::forget(const Exporter& from) {
  State& s = *state_;
  const ExporterKey with_port = exporter_key(from, true);
  const ExporterKey without = exporter_key(from, false);
  auto mine = [&](const ExporterKey& k) { return k == with_port || k == without; };
  s.templates.forget(with_port, without);
  for (auto it = s.domains.begin(); it != s.domains.end();)
    it = mine(it->first.exporter) ? s.domains.erase(it) : std::next(it);
  for (auto it = s.pending.begin(); it != s.pending.end();) {
    if (it->ctx.from == from) {
      it = s.drop_pending(it);
    } else {
      ++it;
    }
  }
}

}  // namespace flowd::collector
