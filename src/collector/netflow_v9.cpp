// SPDX-License-Identifier: Apache-2.0
// NetFlow v9 (RFC 3954): templates and options templates keyed by (exporter address, source_id,
// id), parsed strictly by flowset lengths (the header count is unreliable and ignored).
#include "collector/decoder_state.hpp"
#include "collector/ie_ids.hpp"

namespace flowd::collector {
namespace {

constexpr std::size_t kHeader = 20;

// v9 field types are IANA ids; there is no enterprise bit, so ids >= 32768 are vendor ids with no
// known type (named "id<N>").
FieldSpec v9_field(std::uint16_t type, std::uint16_t length) {
  FieldSpec f;
  f.id = type;
  f.length = length;
  f.type = type >= 32768 ? IeType::kOctetArray : ie_type(0, type);
  return f;
}

// Options scope types (RFC 3954 §6.1) mapped to IPFIX elements: 1 System -> exportingProcessId
// (144), 2 Interface -> ingressInterface (10), 3 Line Card -> lineCardId (141), 5 Template ->
// templateId (145). 4 Cache (and unknown scope types) have no IPFIX equivalent: kept as raw octets
// under id 0x8000|type
// ("id32772"), so they cannot be mistaken for the IANA element with the same number.
FieldSpec scope_field(std::uint16_t type, std::uint16_t length) {
  std::uint16_t id;
  switch (type) {
    case 1:
      id = ie::kExportingProcessId;
      break;
    case 2:
      id = ie::kIngressInterface;
      break;
    case 3:
      id = ie::kLineCardId;
      break;
    case 5:
      id = ie::kTemplateId;
      break;
    default:
      id = static_cast<std::uint16_t>(type | 0x8000);
      break;
  }
  FieldSpec f = v9_field(id, length);
  if (id >= 32768) f.type = IeType::kOctetArray;
  return f;
}

bool finish_template(Template& t) {
  t.min_record = 0;
  for (const auto& f : t.fields) t.min_record += f.length;
  index_layout(t);
  return t.min_record > 0;  // all-zero-length templates would never advance
}

}  // namespace

void Decoder::State::decode_v9(Bytes pkt, const Exporter& from, TimePoint now, RecordBatch& out,
                               DecodeResult& result) {
  if (pkt.size() < kHeader) {
    result.errors.push_back(DecodeError::kTooShort);
    return;
  }
  const std::uint8_t* h = pkt.data();
  MessageContext ctx;
  ctx.version = 9;
  ctx.from = from;
  ctx.received = now;
  ctx.sys_uptime = get32(h + 4);
  ctx.unix_secs = get32(h + 8);
  ctx.domain = get32(h + 16);
  const ExporterKey ek = exporter_key(from, false);
  check_sequence(domain(from, 9, ctx.domain, now), get32(h + 12), get32(h + 12) + 1, result);

  // A template (or options template) that parsed: checked, stored, and any data held for it
  // released.
  auto commit = [&](std::uint16_t tid, Template t) {
    if (!finish_template(t)) {
      result.errors.push_back(DecodeError::kBadTemplate);
      return;
    }
    commit_template(TemplateKey{ek, 9, ctx.domain, tid}, std::move(t), now, out, result);
  };
  std::size_t off = kHeader;
  while (pkt.size() - off >= 4) {
    const std::uint16_t set_id = get16(h + off);
    const std::uint16_t set_len = get16(h + off + 2);
    if (set_len < 4 || set_len > pkt.size() - off) {
      // The ZEROS rule: a flowset length < 4 or beyond the packet ends the packet.
      result.errors.push_back(DecodeError::kBadSetLength);
      return;
    }
    const std::uint8_t* body = h + off + 4;
    const std::size_t body_len = set_len - 4u;
    off += set_len;

    if (set_id == 0) {  // templates
      std::size_t p = 0;
      while (body_len - p >= 4) {
        const std::uint16_t tid = get16(body + p);
        const std::uint16_t n = get16(body + p + 2);
        if (tid == 0 && n == 0) break;  // zero padding
        if (std::size_t{n} * 4 > body_len - p - 4 || n == 0 || tid < 256) {
          result.errors.push_back(DecodeError::kBadTemplate);
          break;
        }
        Template t;
        t.fields.reserve(n);
        for (std::size_t i = 0; i < n; ++i)
          t.fields.push_back(v9_field(get16(body + p + 4 + 4 * i), get16(body + p + 6 + 4 * i)));
        p += 4 + std::size_t{n} * 4;
        commit(tid, std::move(t));
      }
    } else if (set_id == 1) {  // options templates
      std::size_t p = 0;
      while (body_len - p >= 6) {
        const std::uint16_t tid = get16(body + p);
        const std::uint16_t scope_len = get16(body + p + 2);
        const std::uint16_t option_len = get16(body + p + 4);
        if (tid == 0 && scope_len == 0 && option_len == 0) break;  // zero padding
        if (tid < 256 || scope_len % 4 != 0 || option_len % 4 != 0 || scope_len + option_len == 0 ||
            std::size_t{scope_len} + option_len > body_len - p - 6) {
          result.errors.push_back(DecodeError::kBadTemplate);
          break;
        }
        Template t;
        t.options = true;
        t.scope_count = static_cast<std::uint16_t>(scope_len / 4);
        const std::uint8_t* f = body + p + 6;
        for (std::size_t i = 0; i < scope_len / 4u; ++i)
          t.fields.push_back(scope_field(get16(f + 4 * i), get16(f + 4 * i + 2)));
        f += scope_len;
        for (std::size_t i = 0; i < option_len / 4u; ++i)
          t.fields.push_back(v9_field(get16(f + 4 * i), get16(f + 4 * i + 2)));
        p += 6 + std::size_t{scope_len} + option_len;
        commit(tid, std::move(t));
      }
    } else if (set_id >= 256) {  // data
      const TemplateKey key{ek, 9, ctx.domain, set_id};
      const Template* t = templates.find(key, now);
      if (!t) {
        if (body_len > 0)
          hold(PendingSet{key, ctx, std::vector<std::uint8_t>(body, body + body_len)}, result);
        continue;
      }
      std::size_t n = 0;
      const std::size_t before = out.size();
      if (!decode_data_set(*t, set_id, Bytes(body, body_len), ctx, out, n)) {
        // Keep the whole records before the bad one (v9 is decoded leniently, flowset by flowset).
        result.errors.push_back(DecodeError::kBadRecord);
      }
      result.records += out.size() - before;
    }
    // 2..255: reserved, skipped by length.
  }
}

}  // namespace flowd::collector
