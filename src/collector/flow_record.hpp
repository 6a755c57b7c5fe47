// SPDX-License-Identifier: Apache-2.0
// What the NetFlow/IPFIX decoders produce: one FlowRecord per data record, fields named by IANA
// IPFIX information element (NetFlow v1/v5/v9 fields are mapped to the same elements). Pure data.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "collector/ie_ids.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/rfc3339.hpp"

namespace flowd::collector {

// Who sent the export: address and UDP/TCP source port.
struct Exporter {
  IpAddress address;
  std::uint16_t port = 0;
  bool operator==(const Exporter&) const = default;
  std::string to_string() const;  // "192.0.2.1:2055", "[2001:db8::1]:4739"
};

enum class ValueKind : std::uint8_t {
  kUnsigned,  // unsigned8..64 (reduced-size encoding widened)
  kSigned,    // signed8..64 (sign-extended)
  kFloat,     // float32/float64
  kBool,
  kIpv4,
  kIpv6,
  kMac,
  kString,
  kOctets,    // anything else: raw bytes
  kDateTime,  // absolute time (any of the dateTime* encodings), as a TimePoint
};

struct FieldValue {
  ValueKind kind = ValueKind::kOctets;
  // kDateTime: the element's own resolution (next to `kind`: it fits in its padding).
  TimePrecision precision = TimePrecision::kMilliseconds;
  std::uint64_t u = 0;
  std::int64_t i = 0;
  double f = 0;
  IpAddress ip;
  TimePoint time{};
  std::string bytes;  // kString, kOctets and kMac (6 bytes)
};

struct Field {
  std::uint32_t pen = 0;  // 0 = IANA
  std::uint16_t id = 0;
  FieldValue value;
};

// Which export protocol a record came from: sFlow v5 and NetFlow v5 both say "version 5".
enum class ExportProtocol : std::uint8_t {
  kNetflow,  // NetFlow v1/v5/v9 and IPFIX (version 1, 5, 9, 10)
  kSflow,    // sFlow v5: one record per flow sample (collector/sflow.hpp)
};

// Where the elements that the observed-flow path reads from every record sit in FlowRecord::fields:
// the 5-tuple, the flow label, flowEndReason and the counters. A decoder finds them once per
// template (or knows them, for fixed layouts), so that a collector reads them by index instead of
// scanning every field of every record for each of them.
struct KeyFields {
  enum Slot : std::uint8_t {
    kProtocol,
    kSrcPort,
    kDstPort,
    kSrcV4,
    kDstV4,
    kSrcV6,
    kDstV6,
    kFlowLabel,
    kFlowEndReason,
    kOctetDelta,
    kOctetTotal,
    kPacketDelta,
    kPacketTotal,
    kSlots
  };
  // The IANA element of each slot (enterprise 0).
  static constexpr std::array<std::uint16_t, kSlots> kIds{
      ie::kProtocolIdentifier,     ie::kSourceTransportPort,    ie::kDestinationTransportPort,
      ie::kSourceIPv4Address,      ie::kDestinationIPv4Address, ie::kSourceIPv6Address,
      ie::kDestinationIPv6Address, ie::kFlowLabelIPv6,          ie::kFlowEndReason,
      ie::kOctetDeltaCount,        ie::kOctetTotalCount,        ie::kPacketDeltaCount,
      ie::kPacketTotalCount};
  static constexpr std::int8_t kAbsent = -1;
  // Positions past this are not noted (the record is scanned): one byte each keeps FlowRecord
  // small, and a decoder writes one per record.
  static constexpr std::size_t kMaxPosition = 127;

  std::array<std::int8_t, kSlots> at{kAbsent, kAbsent, kAbsent, kAbsent, kAbsent, kAbsent, kAbsent,
                                     kAbsent, kAbsent, kAbsent, kAbsent, kAbsent, kAbsent};
  // False: the positions are not known (a record built by hand, a layout that repeats one of these
  // elements, where "the first one" and "the first non-zero one" could differ, or one with more
  // than kMaxPosition fields before one of them): scan.
  bool known = false;

  // Positions of a layout given as its (enterprise, id) pairs in field order.
  template <typename Range, typename PenOf, typename IdOf>
  static KeyFields of(const Range& fields, PenOf pen_of, IdOf id_of) {
    KeyFields k;
    k.known = true;
    std::size_t pos = 0;
    for (const auto& f : fields) k.note(pen_of(f), id_of(f), pos++);
    return k;
  }
  // Records that element (pen, id) is field number `pos` (fields noted in order). Cheap: v9
  // exporters resend (and the decoder parses) every template in every packet.
  void note(std::uint32_t pen, std::uint16_t id, std::size_t pos) {
    if (pen != 0 || id >= kSlotOf.size()) return;
    const std::uint8_t s = kSlotOf[id];
    if (s == kSlots) return;
    if (at[s] != kAbsent || pos > kMaxPosition)
      known = false;
    else
      at[s] = static_cast<std::int8_t>(pos);
  }

 private:
  // The slot of each element id up to the largest in kIds (kSlots: none).
  static constexpr std::array<std::uint8_t, 137> kSlotOf = [] {
    std::array<std::uint8_t, 137> t{};
    t.fill(kSlots);
    for (std::size_t s = 0; s < kSlots; ++s) t[kIds[s]] = static_cast<std::uint8_t>(s);
    return t;
  }();
};

struct FlowRecord {
  Exporter exporter;
  TimePoint received{};
  ExportProtocol protocol = ExportProtocol::kNetflow;
  int version = 0;                // 1, 5, 9 or 10; 5 for sFlow
  std::uint32_t domain = 0;       // v9 source id, IPFIX observation domain, v5 engine type<<8|id,
                                  // sFlow sub_agent_id
  std::uint16_t template_id = 0;  // 0 for v1/v5
  bool options = false;           // an options record (sampling, interface names...)
  // Whether the packet/octet counters were already multiplied by sampling_rate (apply_sampling).
  bool counters_scaled = false;
  // Set by the decoders; whoever adds or removes fields of a decoded record resets it. Here, in the
  // padding before sampling_rate, so that it makes each record 8 bytes larger, not 32.
  KeyFields keys;
  // The 1-in-N sampling rate that applies to this data record (0: none known, i.e. 1).
  std::uint64_t sampling_rate = 0;
  std::vector<Field> fields;

  const Field* find(std::uint16_t id, std::uint32_t pen = 0) const;
  // The field of a key slot: by its noted position, else (positions unknown, or the field there is
  // not that element) by the same scan as find().
  const Field* key(KeyFields::Slot s) const {
    if (keys.known) {
      const std::int8_t pos = keys.at[s];
      if (pos == KeyFields::kAbsent) return nullptr;
      if (static_cast<std::size_t>(pos) < fields.size()) {
        const Field& f = fields[static_cast<std::size_t>(pos)];
        if (f.id == KeyFields::kIds[s] && f.pen == 0) return &f;
      }
    }
    return find(KeyFields::kIds[s]);
  }
};

// The records of one or more decode calls. clear() keeps every record and field allocated, and the
// decoder overwrites them in place next time: a collector decoding millions of records per second
// would otherwise spend most of its time allocating and zeroing them.
class RecordBatch {
 public:
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  // Forgets the records after the first n (a data set that turned out to be malformed).
  void truncate(std::size_t n) {
    if (n < size_) size_ = n;
  }
  FlowRecord& operator[](std::size_t i) { return slots_[i]; }
  const FlowRecord& operator[](std::size_t i) const { return slots_[i]; }
  FlowRecord& back() { return slots_[size_ - 1]; }
  const FlowRecord& back() const { return slots_[size_ - 1]; }
  FlowRecord* begin() { return slots_.data(); }
  FlowRecord* end() { return slots_.data() + size_; }
  const FlowRecord* begin() const { return slots_.data(); }
  const FlowRecord* end() const { return slots_.data() + size_; }
  // A slot for one more record; it may hold an older record's values, to be overwritten.
  FlowRecord& next() {
    if (size_ == slots_.size()) slots_.emplace_back();
    return slots_[size_++];
  }
  void push_back(FlowRecord&& r) { next() = std::move(r); }

 private:
  std::vector<FlowRecord> slots_;
  std::size_t size_ = 0;
};

// Writes the fields of a record whose storage may be reused: existing Field objects are
// overwritten, new ones appended, and finish() drops the leftovers of a longer earlier record.
class FieldWriter {
 public:
  explicit FieldWriter(FlowRecord& rec) : rec_(rec) {}
  Field& next() {
    if (n_ < rec_.fields.size()) return rec_.fields[n_++];
    ++n_;
    return rec_.fields.emplace_back();
  }
  // A field written so far (not the leftovers of an earlier record).
  const Field* find(std::uint16_t id, std::uint32_t pen = 0) const {
    for (std::size_t i = 0; i < n_; ++i)
      if (rec_.fields[i].id == id && rec_.fields[i].pen == pen) return &rec_.fields[i];
    return nullptr;
  }
  void finish() { rec_.fields.resize(n_); }
  std::size_t size() const { return n_; }
  Field& operator[](std::size_t i) { return rec_.fields[i]; }

 private:
  FlowRecord& rec_;
  std::size_t n_ = 0;
};

}  // namespace flowd::collector
