// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: `flowd analyze`'s dump-line reader and pairing. The input is a dump (lines of
// JSON); the first byte picks the pairing window and open-entry cap (tiny caps make evictions
// common) and whether lines are parsed in place (padded) or copied. Every flow goes through the
// pairer, every connection out of it through the JSON form (which must parse); invariants are
// checked with traps.
#include <simdjson.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "analyze/connection_format.hpp"
#include "analyze/connection_pairing.hpp"
#include "analyze/dump_line.hpp"

namespace fa = flowd::analyze;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fa::DumpLineParser parser;  // reused across inputs, as across the lines of a file
  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  fa::PairingOptions options;
  options.window = std::chrono::seconds{(selector & 7) * 10};
  options.max_open = 1 + ((selector >> 3) & 3);
  const bool padded = selector & 0x20;
  std::uint64_t emitted = 0, records_out = 0;
  std::string rendered;
  fa::ConnectionPairer pairer(options, [&](fa::Connection&& c) {
    if (c.end < c.start || c.records == 0) __builtin_trap();
    ++emitted;
    records_out += c.records;
    fa::ConnectionNames names;
    names.tagged = c.flow_label != 0;
    rendered.clear();
    fa::append_connection_json(c, names, rendered);
    if (!nlohmann::json::accept(rendered)) __builtin_trap();
  });

  std::string copy;
  std::uint64_t flows = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    const fa::ParsedLine* r;
    if (padded) {
      copy.assign(line);
      copy.append(simdjson::SIMDJSON_PADDING, '\0');
      r = &parser.parse(std::string_view(copy.data(), line.size()), true);
    } else {
      r = &parser.parse(line, false);
    }
    if (r->outcome == fa::LineOutcome::kMalformed && r->detail.empty()) __builtin_trap();
    if (r->outcome != fa::LineOutcome::kFlow) continue;
    if (r->flow.end < r->flow.start) __builtin_trap();
    ++flows;
    pairer.add(r->flow, r->received.value_or(r->flow.end));
    if (pairer.open_count() > options.max_open) __builtin_trap();
  }
  pairer.flush();
  const auto& n = pairer.counters();
  if (n.records != flows || records_out != flows || n.connections != emitted ||
      n.biflow + n.matched + n.unpaired != emitted || pairer.open_count() != 0)
    __builtin_trap();
  return 0;
}
