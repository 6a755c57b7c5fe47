// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the named-pipe line protocol (LineAssembler -> parse_pipe_line /
// find_embedded_line).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "core/registry_loader.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/np_api/pipe_line.hpp"

namespace {

constexpr std::size_t kMaxLine = 4096;

const flowd::ScitagsRegistry& registry() {
  static const std::shared_ptr<const flowd::ScitagsRegistry> r = [] {
    std::string error;
    auto p = flowd::ScitagsRegistry::parse(flowd::registry_snapshot_json(), error);
    if (!p) __builtin_trap();  // the built-in snapshot must always parse
    return p;
  }();
  return *r;
}

void check(const flowd::np_api::LineResult& r) {
  if (!r.ok) return;
  const flowd::FlowID& f = r.flow;
  if (f.experiment > flowd::kMaxExperiment) __builtin_trap();
  if (f.activity > flowd::kMaxActivity) __builtin_trap();
  if (f.src.family != f.dst.family) __builtin_trap();
  if (f.src.family == 0) __builtin_trap();
  // What the flow journal would not take back at a restart (try15i C).
  if (f.src.is_unspecified() || f.dst.is_unspecified()) __builtin_trap();
  if (f.origin != flowd::FlowOrigin::kLocal) __builtin_trap();  // a pipe line is this host's flow
}

void on_line(std::string_view line, bool overflowed) {
  if (line.size() > kMaxLine) __builtin_trap();
  (void)overflowed;
  const auto& reg = registry();
  auto r = flowd::np_api::parse_pipe_line(line, reg, flowd::TimePoint{});
  check(r);
  if (!r.ok) {
    std::size_t off = flowd::np_api::find_embedded_line(line, reg);
    if (off != std::string_view::npos) {
      if (off == 0 || off >= line.size()) __builtin_trap();
      // find_embedded_line promises a line that parses at that offset.
      auto e = flowd::np_api::parse_pipe_line(line.substr(off), reg, flowd::TimePoint{});
      if (!e.ok) __builtin_trap();
      check(e);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  registry();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::size_t split = size == 0 ? 0 : static_cast<std::size_t>(data[0]) * size / 256;
  flowd::np_api::LineAssembler la(kMaxLine);
  la.feed(in.substr(0, split), on_line);
  la.feed(in.substr(split), on_line);
  if (la.overflowed() && !la.has_partial()) __builtin_trap();
  la.drop_partial();
  if (la.has_partial()) __builtin_trap();
  return 0;
}
