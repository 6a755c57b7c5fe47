// SPDX-License-Identifier: Apache-2.0
#include "core/local_flow_arbiter.hpp"

#include <algorithm>
#include <cstring>

namespace flowd {
namespace {

// Never before the start the backends saw: the two reports' clocks differ.
TimePoint not_before(const FlowID& start, TimePoint when) {
  return start.start_time ? std::max(*start.start_time, when) : when;
}

FlowID end_of(const FlowID& start, TimePoint when) {
  FlowID e = start;
  e.state = FlowState::kEnd;
  e.end_time = not_before(start, when);
  return e;
}

IpAddress unmapped(const IpAddress& a) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!a.is_v6() || std::memcmp(a.bytes.data(), kMapped, sizeof kMapped) != 0) return a;
  return IpAddress::v4(std::uint32_t{a.bytes[12]} << 24 | std::uint32_t{a.bytes[13]} << 16 |
                       std::uint32_t{a.bytes[14]} << 8 | a.bytes[15]);
}

FlowID restart_of(const FlowID& start, TimePoint when) {
  FlowID s = start;
  s.state = FlowState::kStart;
  s.start_time = when;
  s.end_time.reset();
  return s;
}

}  // namespace

FlowKey LocalFlowArbiter::key_of(const FlowID& f) {
  return {f.protocol, IpAddress{}, unmapped(f.dst), f.src_port, f.dst_port};
}

void LocalFlowArbiter::arbitrate(std::span<const FlowID> in, const char* plugin, Rank rank,
                                 std::vector<FlowID>& out) {
  for (const auto& f : in) {
    if (f.origin != FlowOrigin::kLocal) {
      out.push_back(f);
      out.back().plugin = plugin;
      continue;
    }
    one(f, plugin, rank, out);
  }
}

void LocalFlowArbiter::one(const FlowID& f, const char* plugin, Rank rank,
                           std::vector<FlowID>& out) {
  const auto r = static_cast<int>(rank);
  const FlowKey key = key_of(f);
  Entry* e = table_.find(key);
  auto pass = [&] {
    out.push_back(f);
    out.back().plugin = plugin;
  };
  if (f.state == FlowState::kStart) {
    if (!e) e = table_.emplace(key, Entry{}).first;
    const int before = e->visible();
    Report& mine = e->by_rank[r];
    mine.start = f;
    mine.start.plugin = plugin;
    mine.live = true;
    if (before == r || before < 0) return pass();  // a first or a repeated start
    if (r < before) return;                        // held while the explicit report is live
    // The explicit report takes the flow over: the inferred one's flow ends where it begins.
    const TimePoint at = f.start_time.value_or(Clock::now());
    out.push_back(end_of(e->by_rank[before].start, at));
    pass();
    // Its start is never stamped before the end just published either.
    if (out.back().start_time) out.back().start_time = out[out.size() - 2].end_time;
    mine.start.start_time = out.back().start_time;
    return;
  }
  if (f.state == FlowState::kEnd) {
    if (!e) return pass();            // not known (evicted, or never started here)
    if (!e->by_rank[r].live) return;  // the other report's flow: not this end's to end
    const bool visible = e->visible() == r;
    Report& mine = e->by_rank[r];
    mine.live = false;
    const int next = e->visible();
    if (visible) {
      pass();
      out.back().end_time = not_before(mine.start, f.end_time.value_or(Clock::now()));
      if (next >= 0) restart(e->by_rank[next], *out.back().end_time, out);
    }
    if (next < 0) table_.erase(key);
    return;
  }
  // Ongoing: only the report the backends follow.
  if (!e || e->visible() == r) pass();
}

void LocalFlowArbiter::restart(Report& report, TimePoint at, std::vector<FlowID>& out) {
  out.push_back(restart_of(report.start, at));
  report.start.start_time = at;  // what the backends saw: its end is never stamped before it
}

void LocalFlowArbiter::forget(const char* plugin, std::vector<FlowID>& out) {
  constexpr int kExplicit = static_cast<int>(Rank::kExplicit);
  std::vector<FlowKey> gone;
  const TimePoint now = Clock::now();
  table_.for_each([&](const FlowKey& key, Entry& e) {
    Report& report = e.by_rank[kExplicit];
    if (!report.live || std::strcmp(report.start.plugin, plugin) != 0) return;
    report.live = false;
    out.push_back(end_of(report.start, now));
    if (e.by_rank[0].live)
      restart(e.by_rank[0], *out.back().end_time, out);
    else
      gone.push_back(key);
  });
  for (const auto& key : gone) table_.erase(key);
}

}  // namespace flowd
