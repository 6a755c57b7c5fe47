// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the firefly listener's datagram parser (syslog header, UTF-8, JSON, fields),
// and its JSON scanner against nlohmann::json: both must accept exactly the same documents.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "plugins/firefly/firefly_parser.hpp"
#include "plugins/firefly/json_scan.hpp"

namespace {

struct Ignore {
  void null() {}
  void boolean(bool) {}
  void number(const flowd::firefly::JsonNumber&) {}
  void string(std::string_view, bool) {}
  void start_object() {}
  void key(std::string_view, bool) {}
  void end_object() {}
  void start_array() {}
  void end_array() {}
};

void differential(std::string_view in) {
  if (!flowd::firefly::is_utf8(in) || in.starts_with("\xEF\xBB\xBF"))
    return;  // nlohmann skips a BOM
  if (in.find('\0') != std::string_view::npos)
    return;  // nlohmann's lexer takes NUL for the end of input
  std::size_t nesting = 0;
  for (char c : in) nesting += c == '[' || c == '{';
  if (nesting >= flowd::firefly::JsonScanner<Ignore>::kMaxDepth)
    return;  // our depth limit, not theirs
  Ignore h;
  bool ours = flowd::firefly::JsonScanner<Ignore>(in, h).parse();
  bool theirs = nlohmann::json::accept(in.begin(), in.end());
  if (ours && !theirs) {
    // nlohmann refuses numbers beyond double (1e999); JSON's grammar, Python and we take them.
    try {
      (void)nlohmann::json::parse(in.begin(), in.end());
    } catch (const nlohmann::json::out_of_range&) {
      return;
    } catch (const nlohmann::json::exception&) {
    }
  }
  if (ours != theirs) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  differential(in);
  auto r = flowd::firefly::parse_firefly(in, 8192);
  if (r.ok) {
    const flowd::FlowID& f = r.flow;
    if (f.src.family == 0 || f.dst.family == 0) __builtin_trap();
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
