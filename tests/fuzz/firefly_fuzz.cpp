// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the firefly listener's datagram parser (syslog header, UTF-8, JSON, fields),
// and its JSON layer (simdjson, plus the numbers it widens) against nlohmann::json: both must
// accept exactly the same documents, but for the quirks listed in differential().
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "firefly/firefly_json.hpp"
#include "firefly/firefly_parser.hpp"

namespace {

void differential(std::string_view in) {
  // Quirks, where the two differ by design rather than by a bug:
  // 1. nlohmann skips a UTF-8 byte order mark; simdjson (like RFC 8259 parsers) does not.
  if (in.starts_with("\xEF\xBB\xBF")) return;
  // 2. nlohmann's lexer takes NUL for the end of input.
  if (in.find('\0') != std::string_view::npos) return;
  // 3. Our depth limit (kMaxJsonDepth), not theirs.
  std::size_t nesting = 0;
  for (char c : in) nesting += c == '[' || c == '{';
  if (nesting > flowd::firefly::kMaxJsonDepth) return;
  static flowd::firefly::JsonParser parser;
  auto ours = parser.parse(in);
  bool accepted = ours.outcome == flowd::firefly::JsonOutcome::kOk;
  bool theirs = nlohmann::json::accept(in.begin(), in.end());
  if (accepted && !theirs) {
    // 4. nlohmann refuses numbers beyond double (1e999, a 400-digit integer); JSON's grammar,
    //    Python and we take them (simdjson refuses them too: firefly_json.cpp widens them, and
    //    integers beyond 64 bits, before parsing again).
    try {
      (void)nlohmann::json::parse(in.begin(), in.end());
    } catch (const nlohmann::json::out_of_range&) {
      return;
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (accepted != theirs) __builtin_trap();
  // "truncated" means nlohmann ran out of input, so the text really is cut short (on the widened
  // text when numbers were widened: nlohmann stops at 1e999 in the original).
  if (ours.outcome == flowd::firefly::JsonOutcome::kTruncated && !ours.wide_numbers &&
      !flowd::firefly::locate_json_error(in).at_end)
    __builtin_trap();
  if (!accepted && ours.detail.empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  differential(in);
  auto r = flowd::firefly::parse_firefly(in, 8192);
  if (r.ok) {
    const flowd::FlowID& f = r.flow;
    if (f.src.family == 0 || f.dst.family == 0) __builtin_trap();
    // Whatever the datagram says, it stays another host's claim: never sent to, never marked.
    if (f.origin != flowd::FlowOrigin::kRemote) __builtin_trap();
    // The JSON kept for relaying lies inside the datagram and is an object.
    if (r.json.empty() || r.json.front() != '{' || r.json.back() != '}') __builtin_trap();
    if (r.json.data() < in.data() || r.json.data() + r.json.size() > in.data() + in.size())
      __builtin_trap();
    if (f.end_time && f.state != flowd::FlowState::kEnd) __builtin_trap();
  } else if (r.detail.empty()) {
    __builtin_trap();  // every rejection says why
  }
  return 0;
}
