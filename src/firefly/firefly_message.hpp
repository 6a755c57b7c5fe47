// SPDX-License-Identifier: Apache-2.0
// The firefly writer: an RFC 5424 syslog header and the Scitags JSON, byte for byte as the Python
// original writes it (key order, ", " and ": " separators), so existing collectors parse it. The
// reader is firefly_parser.hpp; tests/unit/firefly_codec_test.cpp reads back what this writes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/flow_id.hpp"

namespace flowd::firefly {

// The header fields flowd writes (RFC 5424 §6.2): PRI 134 = facility local0 (16) * 8 + severity
// informational (6), VERSION 1; APP-NAME; MSGID, which the reader requires (firefly_parser.hpp).
inline constexpr std::string_view kSyslogPriVersion = "<134>1";
inline constexpr std::string_view kSyslogAppName = "flowd";
inline constexpr std::string_view kSyslogMsgId = "firefly-json";

// The top-level "usage" object: bytes this host's end of the flow received and sent. The Scitags
// collector computes throughput, and which side is the bulk sender, from it; XRootD sends it
// (spec/flowd.md §4, xrootd#2322/#2359) and the published schema
// (fixtures/firefly/flowd-go-firefly-schema-v1.0.0.json) places it beside "context", integers.
struct FireflyUsage {
  std::uint64_t received = 0;  // bytes
  std::uint64_t sent = 0;      // bytes
  bool operator==(const FireflyUsage&) const = default;
};

struct FireflyFields {
  std::string hostname;     // syslog HOSTNAME
  std::string application;  // context.application
  bool syslog_header = true;
  TimePoint now;
  TimePoint start_time;      // always present: the schema requires it
  std::string src_override;  // replaces flow-id.src-ip when non-empty
  std::string dst_override;  // replaces flow-id.dst-ip when non-empty (public-IP discovery)
  std::string netlink;       // a JSON object added as "netlink" when non-empty (tcp_enrichment.hpp)
  std::optional<FireflyUsage> usage;  // "usage", after "context", when set (tcp_enrichment.hpp)
};

// One datagram for `flow`: "<134>1 NOW HOSTNAME flowd - firefly-json - " (when f.syslog_header)
// and the JSON; times in microseconds (format_time_iso), an "end-time" only for end events.
std::string build_firefly(const FlowID& flow, const FireflyFields& f);
// The same, appended to `out` (a buffer reused from firefly to firefly: no allocation once it has
// grown).
void append_firefly(std::string& out, const FlowID& flow, const FireflyFields& f);
// A relayed firefly: our syslog header (if f.syslog_header) and the JSON exactly as it was
// received.
std::string build_relayed_firefly(std::string_view json, const FireflyFields& f);
void append_relayed_firefly(std::string& out, std::string_view json, const FireflyFields& f);

}  // namespace flowd::firefly
