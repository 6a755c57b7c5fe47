// SPDX-License-Identifier: Apache-2.0
// The IANA IPFIX information element table (internal to the collector): name and abstract data
// type.
#pragma once

#include <cstdint>
#include <string_view>

namespace flowd::collector {

enum class IeType : std::uint8_t {
  kOctetArray,  // also the fallback for unknown elements and structured types (basicList...)
  kUnsigned,
  kSigned,
  kFloat32,
  kFloat64,
  kBoolean,
  kMac,
  kString,
  kDateTimeSeconds,
  kDateTimeMilliseconds,
  kDateTimeMicroseconds,
  kDateTimeNanoseconds,
  kIpv4,
  kIpv6,
};

// RFC 5103: reverse information elements are the forward ones under this PEN.
inline constexpr std::uint32_t kReversePen = 29305;
// InMon Corp.: flowd names its sFlow-only elements under this PEN (collector/sflow.hpp).
inline constexpr std::uint32_t kInmonPen = 4300;

// Abstract data type of (pen, id): IANA (pen 0) and RFC 5103 reverse elements; kOctetArray
// otherwise.
IeType ie_type(std::uint32_t pen, std::uint16_t id);
// The IANA name of an IANA element (pen 0), or empty if not in the table.
std::string_view iana_ie_name(std::uint16_t id);

}  // namespace flowd::collector
