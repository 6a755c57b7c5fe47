// SPDX-License-Identifier: Apache-2.0
// Fields of hand-built collector::FlowRecords, for the tests of what reads records (the netflow
// flow tracker and its bounds): an unsigned element, an address element.
#pragma once

#include <cstdint>

#include "collector/flow_record.hpp"
#include "flowd/flow_id.hpp"

namespace flowd::test {

inline collector::Field unsigned_field(std::uint16_t id, std::uint64_t v) {
  collector::Field f;
  f.id = id;
  f.value.kind = collector::ValueKind::kUnsigned;
  f.value.u = v;
  return f;
}

// `text` is an IPv4 or IPv6 literal (a test's own constant: parsed without a check).
inline collector::Field address_field(std::uint16_t id, const char* text) {
  collector::Field f;
  f.id = id;
  f.value.ip = *IpAddress::parse(text);
  f.value.kind = f.value.ip.is_v6() ? collector::ValueKind::kIpv6 : collector::ValueKind::kIpv4;
  return f;
}

}  // namespace flowd::test
