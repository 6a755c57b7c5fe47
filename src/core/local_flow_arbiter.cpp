// SPDX-License-Identifier: Apache-2.0
#include "core/local_flow_arbiter.hpp"

namespace flowd {
namespace {

FlowID end_of(const FlowID& start, TimePoint when) {
  FlowID e = start;
  e.state = FlowState::kEnd;
  e.end_time = when;
  return e;
}

FlowID restart_of(const FlowID& start, TimePoint when) {
  FlowID s = start;
  s.state = FlowState::kStart;
  s.start_time = when;
  s.end_time.reset();
  return s;
}

}  // namespace

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
  const FlowKey key = FlowKey::of(f);
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
    return pass();
  }
  if (f.state == FlowState::kEnd) {
    if (!e || !e->by_rank[r].live) return pass();  // not known (evicted, or never started)
    const bool visible = e->visible() == r;
    e->by_rank[r].live = false;
    const int next = e->visible();
    if (visible) {
      pass();
      if (next >= 0)
        out.push_back(restart_of(e->by_rank[next].start, f.end_time.value_or(Clock::now())));
    }
    if (next < 0) table_.erase(key);
    return;
  }
  // Ongoing: only the report the backends follow.
  if (!e || e->visible() == r) pass();
}

}  // namespace flowd
