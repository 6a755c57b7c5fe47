// SPDX-License-Identifier: Apache-2.0
// The JSON part of a firefly, parsed by simdjson's DOM parser (validates the whole document, UTF-8
// included), with what the listener needs on top: a depth limit, "truncated" told apart from other
// malformed JSON, and numbers JSON allows but simdjson cannot hold (integers beyond 64 bits,
// floats beyond double) accepted as Python's json.loads does. Differential-fuzzed against
// nlohmann::json in tests/fuzz/firefly_fuzz.cpp.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flowd::firefly {

enum class JsonOutcome : std::uint8_t {
  kOk,
  kTruncated,  // the text is the beginning of a JSON document that stops too early
  kMalformed,  // anything else that is not one JSON value (or nested deeper than kMaxJsonDepth)
};

inline constexpr std::size_t kMaxJsonDepth = 64;

// The sentinels that stand for numbers simdjson cannot hold (see JsonParser::parse).
inline constexpr std::uint64_t kWideUnsigned = UINT64_MAX;
inline constexpr std::int64_t kWideNegative = INT64_MIN;

struct JsonResult {
  JsonOutcome outcome = JsonOutcome::kMalformed;
  simdjson::dom::element root;  // valid when kOk, until the parser's next parse
  bool wide_numbers = false;    // some numbers were replaced by the sentinels above / ±1e308
  std::string detail;           // why, when not kOk
};

// One per thread: simdjson reuses its buffers from one document to the next.
class JsonParser {
 public:
  JsonParser();
  // simdjson copies the text into its own padded buffer (SIMDJSON_PADDING readable bytes past the
  // end); parsing in place from padded recvmmsg buffers measured no faster for ~500-byte fireflies.
  JsonResult parse(std::string_view text);

 private:
  simdjson::dom::parser parser_;
  std::string widened_;  // the text with its too-wide numbers replaced
};

// Where nlohmann::json's parser stops in `text`, for the log line and to tell "truncated" apart:
// simdjson reports one TAPE_ERROR for both "{\"a\": 1" and "{\"a\" 1}".
struct JsonErrorSite {
  bool valid = false;      // nlohmann accepts the text (within kMaxJsonDepth)
  bool at_end = false;     // it needed more input: the text is a truncated document
  bool too_deep = false;   // it met a container nested deeper than kMaxJsonDepth first
  std::size_t offset = 0;  // the byte it stopped at
};
JsonErrorSite locate_json_error(std::string_view text);

// `text` with every number that JSON's grammar allows but simdjson refuses (an integer beyond
// 64 bits, a float beyond ±DBL_MAX) replaced, space-padded, by kWideUnsigned / kWideNegative /
// ±1e308. Leaves everything else as it is; returns false when there was nothing to replace.
bool widen_numbers(std::string_view text, std::string& out);

}  // namespace flowd::firefly
