// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the firefly listener's datagram parser (syslog header, UTF-8, JSON, fields).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "plugins/firefly/firefly_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
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
