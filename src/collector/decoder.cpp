// SPDX-License-Identifier: Apache-2.0
// Decoder: version dispatch, template store, held data (data before its template), sequence
// tracking, and the value decoding shared by v1/v5 (netflow_v5.cpp), v9 (netflow_v9.cpp) and IPFIX
// (ipfix.cpp).
#include "collector/decoder.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include <sys/socket.h>  // AF_INET6 (the constant only)

#include "collector/decoder_state.hpp"
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

// ---- values
// --------------------------------------------------------------------------------------

// Clock::duration counts nanoseconds in 64 bits (about ±292 years): exported times beyond ±2^33
// seconds (year 2242) are clamped rather than overflowing.
constexpr std::int64_t kMaxSeconds = std::int64_t{1} << 33;

TimePoint from_seconds(std::int64_t s) {
  s = std::clamp(s, -kMaxSeconds, kMaxSeconds);
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::seconds{s})};
}

TimePoint from_millis(std::int64_t ms) {
  ms = std::clamp(ms, -kMaxSeconds * 1000, kMaxSeconds * 1000);
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds{ms})};
}

namespace {

constexpr std::int64_t kNtpToUnix = 2208988800;  // seconds from 1900-01-01 to 1970-01-01

TimePoint from_ntp(std::uint64_t v, bool micro) {
  std::int64_t secs = static_cast<std::int64_t>(v >> 32) - kNtpToUnix;
  std::uint64_t frac = v & 0xFFFFFFFFu;
  if (micro) frac &= ~std::uint64_t{0x7FF};  // RFC 7011 §6.1.9: the low 11 bits are ignored
  // Rounded to the nearest nanosecond (microsecond for dateTimeMicroseconds, whose 21 fraction bits
  // cannot hold more), so that printing with 9 (6) truncated digits shows the exported value.
  auto ns = static_cast<std::int64_t>((frac * 1000000000ull + (1ull << 31)) >> 32);
  if (micro) ns = (ns + 500) / 1000 * 1000;
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::seconds{secs} +
                                                               std::chrono::nanoseconds{ns})};
}

void set_octets(FieldValue& v, ValueKind kind, const std::uint8_t* p, std::size_t n) {
  v.kind = kind;
  v.bytes.assign(reinterpret_cast<const char*>(p), n);
}

}  // namespace

// Fills `v` in place: records are decoded field by field into storage that already exists, which
// keeps the per-record cost at a few stores (docs/benchmarks.md, decode-only figures).
void decode_value(IeType type, const std::uint8_t* p, std::size_t n, FieldValue& v) {
  switch (type) {
    case IeType::kUnsigned:
      if (n < 1 || n > 8) break;
      v.kind = ValueKind::kUnsigned;
      v.u = getn(p, n);
      return;
    case IeType::kSigned: {
      if (n < 1 || n > 8) break;
      std::uint64_t raw = getn(p, n);
      if (n < 8 && (p[0] & 0x80)) raw |= ~std::uint64_t{0} << (8 * n);  // sign-extend
      v.kind = ValueKind::kSigned;
      v.i = static_cast<std::int64_t>(raw);
      return;
    }
    case IeType::kFloat32:
    case IeType::kFloat64:
      if (n == 4) {
        v.kind = ValueKind::kFloat;
        v.f = std::bit_cast<float>(get32(p));
        return;
      }
      if (n == 8 && type == IeType::kFloat64) {
        v.kind = ValueKind::kFloat;
        v.f = std::bit_cast<double>(getn(p, 8));
        return;
      }
      break;
    case IeType::kBoolean:
      if (n != 1) break;
      v.kind = ValueKind::kBool;
      v.u = p[0] == 1 ? 1 : 0;  // RFC 7011 §6.1.5: 1 = true, 2 = false
      return;
    case IeType::kMac:
      if (n != 6) break;
      set_octets(v, ValueKind::kMac, p, n);
      return;
    case IeType::kString: {
      // NetFlow v9 exporters pad fixed-size strings with NULs (IF_NAME); drop the padding.
      std::size_t len = n;
      while (len > 0 && p[len - 1] == 0) --len;
      set_octets(v, ValueKind::kString, p, len);
      return;
    }
    case IeType::kIpv4:
      if (n != 4) break;
      v.kind = ValueKind::kIpv4;
      v.ip = IpAddress::v4(get32(p));
      return;
    case IeType::kIpv6:
      if (n != 16) break;
      v.kind = ValueKind::kIpv6;
      v.ip.family = AF_INET6;
      std::memcpy(v.ip.bytes.data(), p, 16);
      return;
    case IeType::kDateTimeSeconds:
      if (n < 1 || n > 8) break;
      v.kind = ValueKind::kDateTime;
      v.precision = TimePrecision::kSeconds;
      v.u = getn(p, n);
      v.time = from_seconds(v.u > static_cast<std::uint64_t>(kMaxSeconds) ? kMaxSeconds
                                                                           : static_cast<std::int64_t>(v.u));
      return;
    case IeType::kDateTimeMilliseconds:
      if (n < 1 || n > 8) break;
      v.kind = ValueKind::kDateTime;
      v.precision = TimePrecision::kMilliseconds;
      v.u = getn(p, n);
      v.time = from_millis(v.u > static_cast<std::uint64_t>(kMaxSeconds * 1000) ? kMaxSeconds * 1000
                                                                                 : static_cast<std::int64_t>(v.u));
      return;
    case IeType::kDateTimeMicroseconds:
    case IeType::kDateTimeNanoseconds:
      if (n != 8) break;
      v.kind = ValueKind::kDateTime;
      v.precision = type == IeType::kDateTimeMicroseconds ? TimePrecision::kMicroseconds : TimePrecision::kNanoseconds;
      v.u = getn(p, 8);
      v.time = from_ntp(v.u, type == IeType::kDateTimeMicroseconds);
      return;
    case IeType::kOctetArray:
      break;
  }
  set_octets(v, ValueKind::kOctets, p, n);
}

namespace {

// A time flowd derived (not exported): `raw` keeps the value's own unit so the record stays exact.
void add_time_field(FieldWriter& w, std::uint16_t id, TimePoint t, TimePrecision precision, std::uint64_t raw) {
  Field& f = w.next();
  f.pen = 0;
  f.id = id;
  f.value.kind = ValueKind::kDateTime;
  f.value.precision = precision;
  f.value.u = raw;
  f.value.time = t;
}

}  // namespace

namespace {

// flowStartSysUpTime/flowEndSysUpTime -> flowStartMilliseconds/flowEndMilliseconds;
// flowStartDeltaMicroseconds/flowEndDeltaMicroseconds -> flowStartMicroseconds/flowEndMicroseconds.
struct TimeRule {
  std::uint16_t relative, absolute;
};
constexpr TimeRule kTimeRules[RelativeTimes::kRules] = {{22, 152}, {21, 153}, {158, 154}, {159, 155}};

}  // namespace

RelativeTimes relative_times_of(const std::vector<FieldSpec>& fields) {
  RelativeTimes rt;
  for (std::size_t i = 0; i < fields.size() && i < 0x7FFF; ++i) {
    const FieldSpec& f = fields[i];
    if (f.pen != 0) continue;
    for (std::size_t r = 0; r < RelativeTimes::kRules; ++r) {
      if (f.id == kTimeRules[r].relative && rt.relative[r] < 0) rt.relative[r] = static_cast<std::int16_t>(i);
      if (f.id == kTimeRules[r].absolute) rt.absolute[r] = true;
    }
  }
  // An element the exporter sent itself is never derived (nor overwritten).
  for (std::size_t r = 0; r < RelativeTimes::kRules; ++r)
    if (rt.absolute[r]) rt.relative[r] = -1;
  return rt;
}

void derive_absolute_times(FieldWriter& w, const TimeBase& base, const RelativeTimes& where) {
  // Values first: adding a field may move the vector the fields live in.
  std::optional<std::uint64_t> value[RelativeTimes::kRules];
  for (std::size_t r = 0; r < RelativeTimes::kRules; ++r) {
    if (where.relative[r] < 0) continue;
    const Field& f = w[static_cast<std::size_t>(where.relative[r])];
    if (f.value.kind == ValueKind::kUnsigned) value[r] = f.value.u;
  }
  for (std::size_t r = 0; r < 2; ++r) {
    if (!value[r] || !base.uptime_ms) continue;
    const std::int64_t ms = uptime_to_unix_ms(base.export_ms, *base.uptime_ms, *value[r]);
    add_time_field(w, kTimeRules[r].absolute, from_millis(ms), TimePrecision::kMilliseconds,
                   static_cast<std::uint64_t>(ms));
  }
  for (std::size_t r = 2; r < RelativeTimes::kRules; ++r) {
    if (!value[r] || !base.export_secs) continue;
    const TimePoint t = from_delta_microseconds(*base.export_secs, static_cast<std::uint32_t>(*value[r]));
    add_time_field(w, kTimeRules[r].absolute, t, TimePrecision::kMicroseconds,
                   static_cast<std::uint64_t>(
                       std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count()));
  }
}

KeyFields key_fields_of(const std::vector<FieldSpec>& fields) {
  return KeyFields::of(
      fields, [](const FieldSpec& f) { return f.pen; }, [](const FieldSpec& f) { return f.id; });
}

bool has_sampling_fields(const std::vector<FieldSpec>& fields) {
  return std::any_of(fields.begin(), fields.end(), [](const FieldSpec& f) {
    return f.pen == 0 && (f.id == 34 || f.id == 48 || f.id == 302);
  });
}

ExporterKey exporter_key(const Exporter& from, bool with_port) {
  ExporterKey k;
  k.family = from.address.family;
  k.addr = from.address.bytes;
  k.port = with_port ? from.port : 0;
  return k;
}

bool Template::same_layout(const Template& o) const {
  if (fields.size() != o.fields.size() || scope_count != o.scope_count || options != o.options)
    return false;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].pen != o.fields[i].pen || fields[i].id != o.fields[i].id ||
        fields[i].length != o.fields[i].length)
      return false;
  }
  return true;
}

// ---- templates
// -----------------------------------------------------------------------------------

const Template* Decoder::State::find_template(const TemplateKey& key, TimePoint now) {
  auto it = templates.find(key);
  if (it == templates.end()) return nullptr;
  if (limits.udp && now - it->second.seen > limits.template_timeout) {
    erase_template(key);
    return nullptr;
  }
  return &it->second;
}

bool Decoder::State::store_template(const TemplateKey& key, Template t, TimePoint now,
                                    DecodeResult& result) {
  t.seen = now;
  auto it = templates.find(key);
  if (it != templates.end()) {
    it->second = std::move(t);  // a redefinition replaces (RFC 3954, RFC 7011 §8.1)
    return true;
  }
  std::size_t& n = template_counts[key.exporter];
  if (n >= limits.max_templates_per_exporter) {
    result.errors.push_back(DecodeError::kTemplateLimit);
    return false;
  }
  ++n;
  templates.emplace(key, std::move(t));
  return true;
}

void Decoder::State::erase_template(const TemplateKey& key) {
  if (templates.erase(key) == 0) return;
  auto it = template_counts.find(key.exporter);
  if (it != template_counts.end() && --it->second == 0) template_counts.erase(it);
}

// ---- held data
// -----------------------------------------------------------------------------------

void Decoder::State::hold(PendingSet p, DecodeResult& result) {
  const std::size_t size = p.body.size();
  if (limits.max_pending_records == 0 || size > limits.max_pending_bytes) {
    result.errors.push_back(DecodeError::kPendingOverflow);
    return;
  }
  // Make room by dropping the oldest held sets: newer data is more likely to meet its template.
  while (!pending.empty() && (pending.size() >= limits.max_pending_records ||
                              pending_bytes + size > limits.max_pending_bytes)) {
    pending_bytes -= pending.front().body.size();
    pending.pop_front();
    result.errors.push_back(DecodeError::kPendingOverflow);
  }
  pending_bytes += size;
  pending.push_back(std::move(p));
  ++result.pending;
}

void Decoder::State::release(const TemplateKey& key, RecordBatch& out,
                             DecodeResult& result, TimePoint now) {
  for (auto it = pending.begin(); it != pending.end();) {
    if (!(it->key == key)) {
      ++it;
      continue;
    }
    PendingSet p = std::move(*it);
    pending_bytes -= p.body.size();
    it = pending.erase(it);
    const Template* t = find_template(key, now);
    if (!t) break;
    // A held set that turns out to be malformed adds nothing.
    const std::size_t mark = out.size();
    std::size_t n = 0;
    if (decode_data_set(*t, key.id, p.body, p.ctx, out, n)) {
      result.records += n;
    } else {
      out.truncate(mark);
      result.errors.push_back(DecodeError::kBadRecord);
    }
  }
}

std::size_t Decoder::State::drop_old_pending(TimePoint now) {
  std::size_t dropped = 0;
  for (auto it = pending.begin(); it != pending.end();) {
    if (now - it->ctx.received > limits.max_pending_age) {
      pending_bytes -= it->body.size();
      it = pending.erase(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

// ---- sequence numbers
// ----------------------------------------------------------------------------

DomainState& Decoder::State::domain(const Exporter& from, int version, std::uint32_t id, TimePoint now) {
  DomainState& d =
      domains[TemplateKey{exporter_key(from, version == 10), static_cast<std::uint8_t>(version), id, 0}];
  if (now > d.seen) d.seen = now;
  return d;
}

void Decoder::State::check_sequence(DomainState& d, std::uint32_t seq, std::optional<std::uint32_t> next,
                                    DecodeResult& result) {
  if (d.expected) {
    const std::uint32_t diff = seq - *d.expected;  // mod 2^32
    // A forward gap is loss; a backward jump (diff >= 2^31) is an exporter restart or reordering.
    if (diff != 0 && diff < 0x80000000u) result.sequence_lost += diff;
  }
  d.expected = next;
}

// ---- sampling
// ------------------------------------------------------------------------------------

namespace {

std::optional<std::uint64_t> unsigned_field(const FieldWriter& w, std::uint16_t id) {
  const Field* f = w.find(id);
  if (!f || f->value.kind != ValueKind::kUnsigned) return std::nullopt;
  return f->value.u;
}

}  // namespace

void Decoder::State::learn_sampling(const FieldWriter& w, const MessageContext& ctx) {
  std::uint64_t rate = 0;
  if (auto interval = unsigned_field(w, 305); interval && *interval > 0) {
    // RFC 5477 systematic count-based sampling: `interval` packets taken out of interval + space.
    rate = (*interval + unsigned_field(w, 306).value_or(0)) / *interval;
  } else if (auto n = unsigned_field(w, 34); n && *n > 0) {
    rate = *n;
  } else if (auto r = unsigned_field(w, 50); r && *r > 0) {
    rate = *r;
  }
  if (rate == 0) return;
  DomainState& d = domain(ctx.from, ctx.version, ctx.domain, ctx.received);
  if (auto id = unsigned_field(w, 302)) {
    d.rates[*id] = rate;
  } else if (auto sid = unsigned_field(w, 48)) {
    d.rates[*sid] = rate;
  } else {
    d.default_rate = rate;
  }
}

std::uint64_t Decoder::State::sampling_rate(const FieldWriter& w, const MessageContext& ctx) {
  if (auto n = unsigned_field(w, 34); n && *n > 0) return *n;
  auto it = domains.find(
      TemplateKey{exporter_key(ctx.from, ctx.version == 10), static_cast<std::uint8_t>(ctx.version), ctx.domain, 0});
  if (it == domains.end()) return 0;
  const DomainState& d = it->second;
  auto id = unsigned_field(w, 302);
  if (!id) id = unsigned_field(w, 48);
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
    if ((f.id == 1 || f.id == 2 || f.id == 85 || f.id == 86) && f.value.kind == ValueKind::kUnsigned)
      f.value.u *= rate;
  }
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
      if (const Field* f = w.find(160); f && f->value.kind == ValueKind::kDateTime) dom.system_init_ms = f->value.u;
    } else if (t.relative_times.any()) {
      TimeBase base;
      base.export_ms = std::int64_t{ctx.unix_secs} * 1000;
      if (ipfix) {
        base.export_secs = ctx.unix_secs;
        if (dom.system_init_ms)
          base.uptime_ms = uptime_at_export(base.export_ms, static_cast<std::int64_t>(*dom.system_init_ms));
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
      const std::uint64_t rate = t.sampling_fields ? sampling_rate(w, ctx) : dom.default_rate.value_or(0);
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
  if (s.limits.udp) {
    for (auto it = s.templates.begin(); it != s.templates.end();) {
      if (now - it->second.seen > s.limits.template_timeout) {
        auto c = s.template_counts.find(it->first.exporter);
        if (c != s.template_counts.end() && --c->second == 0) s.template_counts.erase(c);
        it = s.templates.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (s.limits.udp) {
    // Sequence, sampling and init-time state of exporters gone silent: exporters that restart with a
    // new source port would otherwise grow this map for as long as the collector runs.
    std::erase_if(s.domains, [&](const auto& kv) { return now - kv.second.seen > s.limits.template_timeout; });
  }
  return s.drop_old_pending(now);
}

std::size_t Decoder::template_count() const {
  return state_->templates.size();
}
std::size_t Decoder::pending_count() const {
  return state_->pending.size();
}
std::size_t Decoder::exporter_state_count() const {
  return state_->domains.size();
}

void Decoder::forget(const Exporter& from) {
  State& s = *state_;
  const ExporterKey with_port = exporter_key(from, true);
  const ExporterKey without = exporter_key(from, false);
  auto mine = [&](const ExporterKey& k) { return k == with_port || k == without; };
  for (auto it = s.templates.begin(); it != s.templates.end();)
    it = mine(it->first.exporter) ? s.templates.erase(it) : std::next(it);
  s.template_counts.erase(with_port);
  s.template_counts.erase(without);
  for (auto it = s.domains.begin(); it != s.domains.end();)
    it = mine(it->first.exporter) ? s.domains.erase(it) : std::next(it);
  for (auto it = s.pending.begin(); it != s.pending.end();) {
    if (it->ctx.from == from) {
      s.pending_bytes -= it->body.size();
      it = s.pending.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace flowd::collector
