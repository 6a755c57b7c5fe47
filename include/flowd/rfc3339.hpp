// SPDX-License-Identifier: Apache-2.0
// RFC 3339 date-times (RFC 3339 §5.6), written and read in one place. Public, below every room,
// because fireflies (src/firefly/), the NetFlow/IPFIX JSON dump (src/collector/) and `flowd
// analyze` all print times, and the firefly reader parses them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/flow_id.hpp"

namespace flowd {

// How many fractional digits a time carries: a NetFlow/IPFIX dateTimeSeconds, -Milliseconds,
// -Microseconds or -Nanoseconds value (RFC 7011 §6.1.7-6.1.10), or a time flowd made itself.
enum class TimePrecision : std::uint8_t {
  kSeconds = 0,
  kMilliseconds = 3,
  kMicroseconds = 6,
  kNanoseconds = 9
};

// The one formatter of every timestamp flowd writes: RFC 3339 UTC, "+00:00", with exactly as many
// fractional digits as `precision` (none for seconds), truncated, not rounded (a time is never
// printed later than it was). Years 0000-9999; times outside are clamped to those.
std::string format_time(TimePoint t, TimePrecision precision);
// The same into `out` (at least kFormattedTimeMax bytes, not terminated): its length. For writers
// that format many times a second into a buffer of their own (fireflies).
inline constexpr std::size_t kFormattedTimeMax = 40;
std::size_t format_time_to(char* out, TimePoint t, TimePrecision precision);
// format_time(t, kMicroseconds): fireflies carry microseconds, as the Python original prints them.
std::string format_time_iso(TimePoint t);

// Reads "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)" ("t"/"z"/" " accepted as RFC 3339 §5.6's
// note allows), e.g. "2021-09-07T22:22:21.998225+00:00". nullopt when it does not parse;
// `out_of_range` is set for years outside 1970..2200, which TimePoint is not asked to hold.
std::optional<TimePoint> parse_rfc3339(std::string_view s, bool* out_of_range = nullptr);

}  // namespace flowd
