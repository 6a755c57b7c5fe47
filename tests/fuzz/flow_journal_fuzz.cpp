// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the flow journal's reader (parse_journal_line, replay_journal), which reads
// back at a start a file a killed flowd may have cut anywhere.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/flow_journal.hpp"
#include "flowd/log.hpp"

namespace {

void check_round_trip(const flowd::JournalLine& l) {
  if (l.kind == flowd::JournalLine::Kind::kPid || l.kind == flowd::JournalLine::Kind::kStop) {
    if (l.pid <= 0) __builtin_trap();
    return;
  }
  const flowd::FlowID& f = l.flow;
  // Only a start carries a socket cookie, and never 0 written out (0: unknown, not written).
  if (l.kind != flowd::JournalLine::Kind::kStart && f.socket_cookie != 0) __builtin_trap();
  if (f.experiment > flowd::kMaxExperiment || f.activity > flowd::kMaxActivity) __builtin_trap();
  if (f.origin != flowd::FlowOrigin::kLocal) __builtin_trap();  // never another host's flow
  // What the writer makes of a parsed line parses to the same line.
  std::string again = l.kind == flowd::JournalLine::Kind::kStart
                          ? flowd::journal_start_line(f, l.plugin, l.explicit_rank)
                          : flowd::journal_end_line(f, l.plugin, l.explicit_rank);
  if (again.empty() || again.back() != '\n') __builtin_trap();
  again.pop_back();
  flowd::JournalLine m;
  if (!flowd::parse_journal_line(again, m)) __builtin_trap();
  if (m.kind != l.kind || m.plugin != l.plugin || m.explicit_rank != l.explicit_rank ||
      !(m.flow.src == f.src) || !(m.flow.dst == f.dst) || m.flow.src_port != f.src_port ||
      m.flow.dst_port != f.dst_port || m.flow.protocol != f.protocol ||
      m.flow.experiment != f.experiment || m.flow.activity != f.activity ||
      m.flow.start_time != f.start_time || m.flow.socket_cookie != f.socket_cookie)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    flowd::setup_logging(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  flowd::JournalLine l;
  if (flowd::parse_journal_line(in, l)) check_round_trip(l);
  const auto r = flowd::replay_journal(in, "fuzz");
  for (const auto* reports : {&r.live, &r.stopped})
    for (const auto& report : *reports)
      if (report.start.state != flowd::FlowState::kStart ||
          report.start.origin != flowd::FlowOrigin::kLocal)
        __builtin_trap();
  // Only the connection plugins' reports (inferred) are the stop's.
  for (const auto& report : r.stopped)
    if (report.explicit_rank) __builtin_trap();
  return 0;
}
