// SPDX-License-Identifier: Apache-2.0
// What the NetFlow/IPFIX decoders produce: one FlowRecord per data record, fields named by IANA IPFIX
// information element (NetFlow v1/v5/v9 fields are mapped to the same elements). Pure data.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "flowd/flow_id.hpp"

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
  kOctets,     // anything else: raw bytes
  kDateTime,   // absolute time (any of the dateTime* encodings), as a TimePoint
};

struct FieldValue {
  ValueKind kind = ValueKind::kOctets;
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

struct FlowRecord {
  Exporter exporter;
  TimePoint received{};
  int version = 0;              // 1, 5, 9 or 10
  std::uint32_t domain = 0;     // v9 source id, IPFIX observation domain, v5 engine type<<8|id
  std::uint16_t template_id = 0;  // 0 for v1/v5
  bool options = false;         // an options record (sampling, interface names...)
  std::vector<Field> fields;

  const Field* find(std::uint16_t id, std::uint32_t pen = 0) const;
};

}  // namespace flowd::collector
