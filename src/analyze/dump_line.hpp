// SPDX-License-Identifier: Apache-2.0
// One line of a flowd JSON dump (`dump = PATH` of the netflow plugin, or `flowd decode` output):
//   {"time": RFC 3339, "exporter": "ip:port", "version": N, "domain": N, "template": N,
//    "options": bool, "fields": {IANA element name: value}}
// read into a HalfFlow. Only "fields", "options" and "time" are used; in "fields" only the elements
// of half_flow.hpp, unknown members are ignored, a repeated element (an array) counts with its
// first value. Times may have 0-9 fraction digits and "Z" or an offset. Parsed with simdjson's DOM
// parser, one reused per DumpLineParser. Pure: no I/O, no logging; fuzzed by
// tests/fuzz/analyze_fuzz.cpp.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "analyze/half_flow.hpp"

namespace flowd::analyze {

// Longest dump line read (bytes); a record of the decoder is well under 64 KiB.
inline constexpr std::size_t kMaxLineBytes = 1 << 20;

// Why a line is malformed; each is counted.
enum class LineError : std::uint8_t {
  kTooLong,  // longer than kMaxLineBytes
  kJson,     // not JSON (or cut off: a truncated file's last line)
  kMissing,  // no "fields" object, or neither flow times nor "time"
  kType,     // a member of the wrong JSON type (address not a string, counter not an integer...)
  kValue,    // right type, bad value (an address or time that does not parse, port > 65535...)
};
inline constexpr std::size_t kLineErrorCount = 5;
std::string_view to_string(LineError e);

enum class LineOutcome : std::uint8_t {
  kFlow,         // `flow` and `received` are set
  kOptions,      // an options record: not a flow, skipped
  kNoAddresses,  // a data record without source/destination addresses: skipped
  kBlank,        // an empty or all-blank line: ignored
  kMalformed,    // see `error` and `detail`
};

struct ParsedLine {
  LineOutcome outcome = LineOutcome::kBlank;
  LineError error = LineError::kJson;
  std::string detail;  // when kMalformed: what was wrong, for the log line
  HalfFlow flow;
  std::optional<TimePoint> received;  // the line's "time"
};

class DumpLineParser {
 public:
  DumpLineParser();
  // Parses one line (without its newline). `padded`: simdjson::SIMDJSON_PADDING bytes past its end
  // may be read, so it is parsed in place; else it is copied. The result is valid until the next
  // call.
  const ParsedLine& parse(std::string_view line, bool padded = false);

 private:
  const ParsedLine& malformed(LineError e, std::string detail);

  simdjson::dom::parser parser_;
  HalfFlowBuilder builder_;
  ParsedLine result_;
};

}  // namespace flowd::analyze
