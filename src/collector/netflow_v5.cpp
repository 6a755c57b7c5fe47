// SPDX-License-Identifier: Apache-2.0
// NetFlow v1 and v5 (Cisco fixed formats): each 48-byte record mapped to IANA IPFIX elements, plus
// absolute flowStartMilliseconds/flowEndMilliseconds computed from the header.
#include "collector/decoder_state.hpp"

namespace flowd::collector {
namespace {

constexpr std::size_t kRecordSize = 48;

void add(FlowRecord& rec, std::uint16_t id, IeType type, const std::uint8_t* p, std::size_t n) {
  Field f;
  f.id = id;
  f.value = decode_value(type, p, n);
  rec.fields.push_back(std::move(f));
}

void add_unsigned(FlowRecord& rec, std::uint16_t id, std::uint64_t v) {
  Field f;
  f.id = id;
  f.value.kind = ValueKind::kUnsigned;
  f.value.u = v;
  rec.fields.push_back(std::move(f));
}

}  // namespace

void Decoder::State::decode_v1v5(Bytes pkt, const Exporter& from, TimePoint now,
                                 std::vector<FlowRecord>& out, DecodeResult& result) {
  const bool v5 = result.version == 5;
  const std::size_t header = v5 ? 24 : 16;
  if (pkt.size() < header) {
    result.errors.push_back(DecodeError::kTooShort);
    return;
  }
  const std::uint8_t* h = pkt.data();
  const std::uint16_t count = get16(h + 2);
  // Strict: the whole datagram is rejected when `count` records do not fit (nfcapd does the same).
  if (pkt.size() < header + std::size_t{count} * kRecordSize) {
    result.errors.push_back(DecodeError::kBadLength);
    return;
  }
  const std::uint32_t sys_uptime = get32(h + 4);
  const std::uint32_t unix_secs = get32(h + 8);
  const std::uint32_t unix_nsecs = get32(h + 12);
  const std::int64_t export_ms = std::int64_t{unix_secs} * 1000 + unix_nsecs / 1000000;
  std::uint32_t domain = 0;
  std::uint16_t sampling = 0;
  if (v5) {
    domain = (std::uint32_t{h[20]} << 8) | h[21];
    sampling = get16(h + 22);
    TemplateKey sk{exporter_key(from, false), 5, domain, 0};
    check_sequence(sk, get32(h + 16), get32(h + 16) + count, result);
  }

  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* r = h + header + i * kRecordSize;
    FlowRecord rec;
    rec.exporter = from;
    rec.received = now;
    rec.version = result.version;
    rec.domain = domain;
    rec.fields.reserve(v5 ? 20 : 16);
    add(rec, 8, IeType::kIpv4, r + 0, 4);
    add(rec, 12, IeType::kIpv4, r + 4, 4);
    add(rec, 15, IeType::kIpv4, r + 8, 4);
    add(rec, 10, IeType::kUnsigned, r + 12, 2);
    add(rec, 14, IeType::kUnsigned, r + 14, 2);
    add(rec, 2, IeType::kUnsigned, r + 16, 4);
    add(rec, 1, IeType::kUnsigned, r + 20, 4);
    add(rec, 22, IeType::kUnsigned, r + 24, 4);
    add(rec, 21, IeType::kUnsigned, r + 28, 4);
    add(rec, 7, IeType::kUnsigned, r + 32, 2);
    add(rec, 11, IeType::kUnsigned, r + 34, 2);
    if (v5) {
      add(rec, 6, IeType::kUnsigned, r + 37, 1);
      add(rec, 4, IeType::kUnsigned, r + 38, 1);
      add(rec, 5, IeType::kUnsigned, r + 39, 1);
      add(rec, 16, IeType::kUnsigned, r + 40, 2);
      add(rec, 17, IeType::kUnsigned, r + 42, 2);
      add(rec, 9, IeType::kUnsigned, r + 44, 1);
      add(rec, 13, IeType::kUnsigned, r + 45, 1);
      if (sampling != 0) {
        add_unsigned(rec, 34, sampling & 0x3FFF);  // samplingInterval
        add_unsigned(rec, 35, sampling >> 14);     // samplingAlgorithm (the v5 mode bits)
      }
    } else {
      add(rec, 4, IeType::kUnsigned, r + 38, 1);
      add(rec, 5, IeType::kUnsigned, r + 39, 1);
      add(rec, 6, IeType::kUnsigned, r + 40, 1);
    }
    add_times_from_uptime(rec, export_ms, sys_uptime);
    out.push_back(std::move(rec));
    ++result.records;
  }
}

}  // namespace flowd::collector
