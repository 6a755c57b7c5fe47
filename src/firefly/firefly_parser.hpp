// SPDX-License-Identifier: Apache-2.0
// Fireflies as real senders write them: an optional 7-token RFC 5424 header ("<134>1 TS HOST APP
// PROCID firefly-json SD ", TS being "-", empty (flowd-go) or RFC 3339) followed by the Scitags
// JSON, or the bare JSON, parsed by simdjson (firefly_json.hpp). Pure functions: no I/O, no
// logging; fuzzed by tests/fuzz/firefly_fuzz.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/flow_id.hpp"

namespace flowd::firefly {

enum class RejectReason : std::uint8_t {
  kOversized,   // larger than the configured maximum datagram
  kTruncated,   // the JSON stops before it is complete
  kNotUtf8,     // bytes that are not UTF-8
  kHeader,      // neither a firefly syslog header nor a JSON object
  kJson,        // malformed JSON
  kMissing,     // a required field is absent
  kType,        // a field of the wrong JSON type
  kRange,       // a number or date out of range
  kValue,       // an unknown state/protocol, an address or a time that does not parse
  kNotAllowed,  // the sender is outside `allow` (counted by the plugin, never by the parser)
};
inline constexpr std::size_t kRejectReasonCount = 10;
std::string_view to_string(RejectReason r);

struct ParseResult {
  bool ok = false;
  FlowID flow;
  RejectReason reason = RejectReason::kJson;
  std::string detail;     // what was wrong, for the log line
  std::string_view json;  // the JSON object inside the datagram (valid when ok)
};

// Everything a firefly may carry is read; its JSON text is not copied (see ParseResult::json).
ParseResult parse_firefly(std::string_view datagram, std::size_t max_size = 65507);

// RFC 3339 date-time ("2021-09-07T22:22:21.998225+00:00", "...Z", up to 9 fraction digits).
// nullopt when it does not parse; `out_of_range` is set for dates TimePoint cannot hold.
std::optional<TimePoint> parse_rfc3339(std::string_view s, bool* out_of_range = nullptr);

bool is_utf8(std::string_view s);

}  // namespace flowd::firefly
