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

#include "firefly/firefly_message.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/rfc3339.hpp"

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

// The syslog header as received (RFC 5424 §6.2): views into the datagram, all empty for a bare
// JSON firefly.
struct SyslogHeader {
  bool present = false;
  std::optional<TimePoint> timestamp;  // nullopt for "-" and the empty TIMESTAMP flowd-go writes
  std::string_view hostname;
  std::string_view app_name;
};

struct ParseResult {
  bool ok = false;
  FlowID flow;
  RejectReason reason = RejectReason::kJson;
  std::string detail;     // what was wrong, for the log line
  std::string_view json;  // the JSON object inside the datagram (valid when ok)
  SyslogHeader header;    // valid when ok
};

// Everything a firefly may carry is read; its JSON text is not copied (see ParseResult::json).
ParseResult parse_firefly(std::string_view datagram, std::size_t max_size = 65507);

// The fields a firefly carries that parse_firefly does not need for its FlowID (the listener relays
// the JSON unchanged), for tests and tools: what firefly_message.hpp writes can be read back whole.
struct FireflyExtras {
  std::optional<std::int64_t> version;    // "version"
  std::optional<TimePoint> current_time;  // flow-lifecycle."current-time"
  std::string afi;                        // flow-id."afi" ("ipv4", "ipv6"); "" when absent
  std::string application;                // context."application"; "" when absent
  std::string netlink;                    // the "netlink" object, minified; "" when absent
  std::optional<FireflyUsage> usage;      // "usage" (both members, non-negative integers)
};
// Reads them from a ParseResult's `json`. nullopt when it is not a JSON object, a field has another
// JSON type than the one above, a time is not RFC 3339, or "usage" lacks "received" or "sent".
std::optional<FireflyExtras> read_extras(std::string_view json);

bool is_utf8(std::string_view s);

}  // namespace flowd::firefly
