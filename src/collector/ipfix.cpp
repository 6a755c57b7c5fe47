// SPDX-License-Identifier: Apache-2.0
// IPFIX (RFC 7011): templates keyed by (exporter address+port, observation domain, id), enterprise
// elements, variable-length fields, options templates and withdrawals. A malformed message is
// discarded whole (RFC 7011 §9.1): templates, withdrawals, records and held sets are collected in
// scratch lists and committed only when the whole message parsed.
#include <cstring>
#include <variant>

#include "collector/decoder_state.hpp"

namespace flowd::collector {
namespace {

constexpr std::size_t kHeader = 16;

struct Define {
  std::uint16_t id;
  Template t;
};
struct Withdraw {
  std::uint16_t id;  // 2 = all data templates, 3 = all options templates
};
struct Refresh {
  std::uint16_t id;  // the same bytes as the stored template: only its lifetime restarts
};
using TemplateOp = std::variant<Define, Withdraw, Refresh>;

// Parses one template record at body[p..]; returns false if it does not fit its set.
bool parse_fields(const std::uint8_t* body, std::size_t body_len, std::size_t& p, std::uint16_t n,
                  Template& t) {
  // Each field specifier is at least 4 bytes: bound the count before allocating.
  if (std::size_t{n} * 4 > body_len - p) return false;
  t.fields.reserve(n);
  t.min_record = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (body_len - p < 4) return false;
    FieldSpec f;
    const std::uint16_t raw = get16(body + p);
    f.length = get16(body + p + 2);
    p += 4;
    f.id = raw & 0x7FFF;
    if (raw & 0x8000) {
      if (body_len - p < 4) return false;
      f.pen = get32(body + p);
      p += 4;
    }
    f.type = ie_type(f.pen, f.id);
    t.min_record += f.length == kVariableLength ? 1 : f.length;
    t.fields.push_back(f);
  }
  index_layout(t);
  return t.min_record > 0;
}

}  // namespace

void Decoder::State::decode_ipfix(Bytes pkt, const Exporter& from, TimePoint now, RecordBatch& out,
                                  DecodeResult& result) {
  if (pkt.size() < kHeader) {
    result.errors.push_back(DecodeError::kTooShort);
    return;
  }
  const std::uint8_t* h = pkt.data();
  const std::uint16_t length = get16(h + 2);
  if (length < kHeader || length > pkt.size()) {
    result.errors.push_back(DecodeError::kBadLength);
    return;
  }
  MessageContext ctx;
  ctx.version = 10;
  ctx.from = from;
  ctx.received = now;
  ctx.unix_secs = get32(h + 4);
  ctx.domain = get32(h + 12);
  const std::uint32_t sequence = get32(h + 8);
  const ExporterKey ek = exporter_key(from, true);
  auto key_of = [&](std::uint16_t id) { return TemplateKey{ek, 10, ctx.domain, id}; };

  std::vector<TemplateOp> ops;          // scratch: template definitions and withdrawals, in order
  const std::size_t mark = out.size();  // records decoded into `out` are taken back on failure
  std::vector<PendingSet> held;         // scratch: data sets waiting for their template
  std::vector<DecodeError> notes;       // non-fatal problems
  std::size_t data_records = 0;
  bool sequence_known = true;

  // The template for `id` at this point of the message, in wire order: the latest scratch op, else
  // the committed store. A withdrawal (of the id, or of all templates of its kind) after the latest
  // definition makes it kWithdrawn: data for it is dropped, never held for a later definition.
  enum class Seen { kFound, kMissing, kWithdrawn };
  const Template* found = nullptr;
  auto lookup = [&](std::uint16_t id) -> Seen {
    unsigned withdrawn_kinds = 0;  // bit 0: all data templates, bit 1: all options templates
    auto judge = [&](const Template* t) {
      if (!t) return Seen::kMissing;
      if (withdrawn_kinds & (t->options ? 2u : 1u)) return Seen::kWithdrawn;
      found = t;
      return Seen::kFound;
    };
    for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
      if (const auto* d = std::get_if<Define>(&*it)) {
        if (d->id == id) return judge(&d->t);
      } else if (const auto* r = std::get_if<Refresh>(&*it)) {
        if (r->id == id) return judge(templates.find(key_of(id), now));
      } else {
        const auto& w = std::get<Withdraw>(*it);
        if (w.id == id) return Seen::kWithdrawn;
        if (w.id == 2) withdrawn_kinds |= 1u;
        if (w.id == 3) withdrawn_kinds |= 2u;
      }
    }
    const Template* committed = templates.find(key_of(id), now);
    if (!committed && !limits.udp) {
      // Withdrawn in an earlier message of this session?
      auto d = domains.find(TemplateKey{ek, 10, ctx.domain, 0});
      if (d != domains.end() && d->second.withdrawn.count(id)) return Seen::kWithdrawn;
    }
    return judge(committed);
  };
  bool withdrawn = false;  // a withdrawal in this message: no template shortcut (Refresh) after it
  auto fail = [&](DecodeError e) {
    out.truncate(mark);
    result.errors.push_back(e);
  };

  std::size_t off = kHeader;
  while (length - off > 0) {
    if (length - off < 4) return fail(DecodeError::kBadSetLength);
    const std::uint16_t set_id = get16(h + off);
    const std::uint16_t set_len = get16(h + off + 2);
    if (set_len < 4 || set_len > length - off) return fail(DecodeError::kBadSetLength);
    const std::uint8_t* body = h + off + 4;
    const std::size_t body_len = set_len - 4u;
    off += set_len;

    if (set_id == 2 || set_id == 3) {
      const bool options = set_id == 3;
      std::size_t p = 0;
      while (body_len - p >= 4) {
        const std::uint16_t tid = get16(body + p);
        const std::uint16_t n = get16(body + p + 2);
        if (n == 0) {
          if (tid == 0) break;  // padding
          p += 4;
          // Withdrawal. RFC 7011 §8: an exporter must not send withdrawals over UDP, where
          // templates expire by lifetime instead; a UDP withdrawal is ignored and reported (as
          // ipfixcol2 does), so one spoofed or stray datagram cannot make the collector drop live
          // templates. Over TCP (limits.udp = false) it is honoured; id 2/3 withdraws all
          // data/options templates.
          if (limits.udp) {
            notes.push_back(DecodeError::kWithdrawalIgnored);
          } else if (tid == 2 || tid == 3 || tid >= 256) {
            ops.push_back(Withdraw{tid});
            withdrawn = true;
          } else {
            return fail(DecodeError::kBadTemplate);
          }
          continue;
        }
        if (tid < 256) return fail(DecodeError::kBadTemplate);
        // Exporters resend every template in every message (softflowd does): when the bytes equal
        // the stored template's, parsing them again would give the same template.
        auto redefined_here = [&] {
          for (const auto& op : ops)
            if (const auto* d = std::get_if<Define>(&op); d && d->id == tid) return true;
          return false;
        };
        if (!withdrawn && !redefined_here()) {
          if (const Template* known = templates.find(key_of(tid), now);
              known && !known->raw.empty() && known->raw.size() <= body_len - p &&
              std::memcmp(known->raw.data(), body + p, known->raw.size()) == 0) {
            p += known->raw.size();
            ops.push_back(Refresh{tid});
            continue;
          }
        }
        const std::size_t record_start = p;
        p += 4;
        Template t;
        t.options = options;
        if (options) {
          if (body_len - p < 2) return fail(DecodeError::kBadTemplate);
          t.scope_count = get16(body + p);
          p += 2;
          if (t.scope_count == 0 || t.scope_count > n) return fail(DecodeError::kBadTemplate);
        }
        if (!parse_fields(body, body_len, p, n, t)) return fail(DecodeError::kBadTemplate);
        t.raw.assign(body + record_start, body + p);
        ops.push_back(Define{tid, std::move(t)});
      }
    } else if (set_id >= 256) {
      const Seen seen = lookup(set_id);
      if (seen == Seen::kWithdrawn) {
        // RFC 7011 §8.1: after a withdrawal the id means nothing until it is defined again.
        if (body_len > 0) notes.push_back(DecodeError::kWithdrawnTemplate);
        continue;
      }
      if (seen == Seen::kMissing) {
        if (body_len == 0) continue;
        if (!limits.udp) {
          // TCP is ordered and reliable, and RFC 7011 §8 has the Template sent before the Data
          // Sets that use it: data the stream gave no template for belongs to a definition this
          // collector never saw (or one withdrawn earlier), so it is dropped rather than held for a
          // later definition that may reuse the id with another layout.
          notes.push_back(DecodeError::kNoTemplate);
          continue;
        }
        held.push_back(
            PendingSet{key_of(set_id), ctx, std::vector<std::uint8_t>(body, body + body_len)});
        sequence_known = false;  // its record count is unknown until the template arrives
        continue;
      }
      std::size_t n = 0;
      if (!decode_data_set(*found, set_id, Bytes(body, body_len), ctx, out, n))
        return fail(DecodeError::kBadRecord);
      data_records += n;
    }
    // 0, 1, 4..255: not used / reserved; skipped by length.
  }

  // ---- the message is well formed: commit ----
  for (DecodeError e : notes) result.errors.push_back(e);
  check_sequence(domain(from, 10, ctx.domain, now), sequence,
                 sequence_known ? std::optional<std::uint32_t>(
                                      sequence + static_cast<std::uint32_t>(data_records))
                                : std::nullopt,
                 result);
  result.records += out.size() - mark;
  for (auto& p : held) hold(std::move(p), result);
  std::set<std::uint16_t>* withdrawn_ids =
      limits.udp ? nullptr : &domain(from, 10, ctx.domain, now).withdrawn;
  auto remember_withdrawn = [&](std::uint16_t id) {
    if (withdrawn_ids && withdrawn_ids->size() < DomainState::kMaxWithdrawn)
      withdrawn_ids->insert(id);
  };
  for (auto& op : ops) {
    if (auto* d = std::get_if<Define>(&op)) {
      const TemplateKey key = key_of(d->id);
      if (withdrawn_ids) withdrawn_ids->erase(d->id);
      commit_template(key, std::move(d->t), now, out, result);
    } else if (const auto* r = std::get_if<Refresh>(&op)) {
      if (templates.refresh(key_of(r->id), now)) ++result.templates;
    } else {
      const auto& w = std::get<Withdraw>(op);
      if (w.id >= 256) {
        templates.erase(key_of(w.id));
        remember_withdrawn(w.id);
        continue;
      }
      const bool options = w.id == 3;
      for (const auto& k : templates.erase_kind(ek, 10, ctx.domain, options))
        remember_withdrawn(k.id);
    }
  }
}

}  // namespace flowd::collector
