// SPDX-License-Identifier: Apache-2.0
// NetFlow v1 and v5 (Cisco fixed formats): each 48-byte record mapped to IANA IPFIX elements, plus
// absolute flowStartMilliseconds/flowEndMilliseconds computed from the header.
#include <span>

#include "collector/decoder_state.hpp"
#include "collector/ie_ids.hpp"

namespace flowd::collector {
namespace {

constexpr std::size_t kRecordSize = 48;

// Where each IANA element sits in a record (Cisco's v1/v5 layouts; spec/netflow.md §B).
struct FixedField {
  std::uint16_t id;
  IeType type;
  std::uint8_t offset, length;
};
constexpr FixedField kCommonFields[] = {
    {ie::kSourceIPv4Address, IeType::kIpv4, 0, 4},
    {ie::kDestinationIPv4Address, IeType::kIpv4, 4, 4},
    {ie::kIpNextHopIPv4Address, IeType::kIpv4, 8, 4},
    {ie::kIngressInterface, IeType::kUnsigned, 12, 2},
    {ie::kEgressInterface, IeType::kUnsigned, 14, 2},
    {ie::kPacketDeltaCount, IeType::kUnsigned, 16, 4},
    {ie::kOctetDeltaCount, IeType::kUnsigned, 20, 4},
    {ie::kFlowStartSysUpTime, IeType::kUnsigned, 24, 4},
    {ie::kFlowEndSysUpTime, IeType::kUnsigned, 28, 4},
    {ie::kSourceTransportPort, IeType::kUnsigned, 32, 2},
    {ie::kDestinationTransportPort, IeType::kUnsigned, 34, 2},
};
constexpr FixedField kV5Fields[] = {
    {ie::kTcpControlBits, IeType::kUnsigned, 37, 1},
    {ie::kProtocolIdentifier, IeType::kUnsigned, 38, 1},
    {ie::kIpClassOfService, IeType::kUnsigned, 39, 1},
    {ie::kBgpSourceAsNumber, IeType::kUnsigned, 40, 2},
    {ie::kBgpDestinationAsNumber, IeType::kUnsigned, 42, 2},
    {ie::kSourceIPv4PrefixLength, IeType::kUnsigned, 44, 1},
    {ie::kDestinationIPv4PrefixLength, IeType::kUnsigned, 45, 1},
};
constexpr FixedField kV1Fields[] = {
    {ie::kProtocolIdentifier, IeType::kUnsigned, 38, 1},
    {ie::kIpClassOfService, IeType::kUnsigned, 39, 1},
    {ie::kTcpControlBits, IeType::kUnsigned, 40, 1},
};

// flowStartSysUpTime and flowEndSysUpTime are the 8th and 9th of kCommonFields.
const RelativeTimes kV1V5Times = [] {
  RelativeTimes rt;
  rt.relative[0] = 7;
  rt.relative[1] = 8;
  return rt;
}();

// Where the key elements are: kCommonFields, then the version's own fields.
KeyFields fixed_keys(std::span<const FixedField> own) {
  std::vector<FixedField> all(std::begin(kCommonFields), std::end(kCommonFields));
  all.insert(all.end(), own.begin(), own.end());
  return KeyFields::of(
      all, [](const FixedField&) { return 0u; }, [](const FixedField& f) { return f.id; });
}
const KeyFields kV1Keys = fixed_keys(kV1Fields);
const KeyFields kV5Keys = fixed_keys(kV5Fields);

void add(FieldWriter& w, std::span<const FixedField> layout, const std::uint8_t* record) {
  for (const auto& l : layout) {
    Field& f = w.next();
    f.pen = 0;
    f.id = l.id;
    decode_value(l.type, record + l.offset, l.length, f.value);
  }
}

void add_unsigned(FieldWriter& w, std::uint16_t id, std::uint64_t v) {
  Field& f = w.next();
  f.pen = 0;
  f.id = id;
  f.value.kind = ValueKind::kUnsigned;
  f.value.u = v;
}

}  // namespace

void Decoder::State::decode_v1v5(Bytes pkt, const Exporter& from, TimePoint now, RecordBatch& out,
                                 DecodeResult& result) {
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
    check_sequence(this->domain(from, 5, domain, now), get32(h + 16), get32(h + 16) + count,
                   result);
  }

  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* r = h + header + i * kRecordSize;
    FlowRecord& rec = out.next();
    rec.exporter = from;
    rec.received = now;
    rec.protocol = ExportProtocol::kNetflow;  // the slot may have held an sFlow record
    rec.version = result.version;
    rec.domain = domain;
    rec.template_id = 0;
    rec.options = false;
    rec.keys = v5 ? kV5Keys : kV1Keys;
    FieldWriter w(rec);
    add(w, kCommonFields, r);
    add(w, v5 ? std::span<const FixedField>(kV5Fields) : std::span<const FixedField>(kV1Fields), r);
    rec.sampling_rate = v5 ? sampling & 0x3FFF : 0;
    rec.counters_scaled = limits.apply_sampling && rec.sampling_rate > 1;
    if (v5 && sampling != 0) {
      add_unsigned(w, ie::kSamplingInterval, sampling & 0x3FFF);
      add_unsigned(w, ie::kSamplingAlgorithm, sampling >> 14);  // the v5 mode bits
      if (rec.counters_scaled) scale_counters(w, rec.sampling_rate);
    }
    TimeBase base;
    base.export_ms = export_ms;
    base.uptime_ms = sys_uptime;
    derive_absolute_times(w, base, kV1V5Times);
    w.finish();
    ++result.records;
  }
}

}  // namespace flowd::collector
