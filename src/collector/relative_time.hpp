// SPDX-License-Identifier: Apache-2.0
// The one place where exported relative times become absolute (issue 10 §2).
//
// NetFlow v5/v9 FIRST/LAST_SWITCHED and IPFIX flowStartSysUpTime/flowEndSysUpTime (22/21) count
// milliseconds of the exporter's uptime, a 32-bit counter that wraps every 49.7 days. The absolute
// time of such a value X is
//     export_time - (uptime_at_export - X)
// with the difference taken as a *signed* 32-bit value: an X a little after the header's uptime
// (Juniper MX exports LAST_SWITCHED up to a few hundred ms after sysUptime, pmacct#640) is a time
// just after the export, not 49.7 days before it, and a genuine wrap (X just below 2^32 while the
// uptime restarted at 0, goflow2#431) is still a time just before the export. Valid for
// |difference| < 24.8 days, which covers any active timeout an exporter uses.
#pragma once

#include <chrono>
#include <cstdint>

#include "flowd/flow_id.hpp"

namespace flowd::collector {

// Milliseconds since the Unix epoch of the uptime value `x_ms` (only its low 32 bits count: Cisco
// NX-OS exports 8-byte FIRST/LAST that hold the same 32-bit clock, nfdump#80), given the export
// time and the uptime at that moment.
constexpr std::int64_t uptime_to_unix_ms(std::int64_t export_unix_ms,
                                         std::uint32_t uptime_at_export_ms, std::uint64_t x_ms) {
  const auto diff =
      static_cast<std::int32_t>(uptime_at_export_ms - static_cast<std::uint32_t>(x_ms));
  return export_unix_ms -
         diff;  // |diff| < 2^31 and export_unix_ms comes from a 32-bit header field
}

// IPFIX: the exporter's uptime at export, from systemInitTimeMilliseconds (160, options data), so
// that 22/21 go through uptime_to_unix_ms too. Without a wrap this gives exactly init + X.
// Only the low 32 bits count, so the difference is taken modulo 2^64: a forged init time
// (any 64-bit value on the wire) cannot overflow a signed subtraction.
constexpr std::uint32_t uptime_at_export(std::int64_t export_unix_ms,
                                         std::int64_t system_init_unix_ms) {
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(export_unix_ms) -
                                    static_cast<std::uint64_t>(system_init_unix_ms));
}

// IPFIX flowStartDeltaMicroseconds/flowEndDeltaMicroseconds (158/159, RFC 5102): microseconds
// *before* the message's export time (an unsigned32 by definition, so there is nothing to wrap).
inline TimePoint from_delta_microseconds(std::int64_t export_unix_seconds, std::uint32_t delta_us) {
  using namespace std::chrono;
  return TimePoint{
      duration_cast<Clock::duration>(seconds{export_unix_seconds} - microseconds{delta_us})};
}

}  // namespace flowd::collector
