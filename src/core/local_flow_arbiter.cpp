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

std::string_view to_string(LocalFlowArbiter::Outcome o) {
  switch (o) {
    case LocalFlowArbiter::Outcome::kPassed:
      return "passed";
    case LocalFlowArbiter::Outcome::kHeld:
      return "held";
    case LocalFlowArbiter::Outcome::kDropped:
      return "dropped";
    case LocalFlowArbiter::Outcome::kAdded:
      return "added";
  }
  return "passed";
}

std::string_view to_string(LocalFlowArbiter::Live l) {
  switch (l) {
    case LocalFlowArbiter::Live::kInferred:
      return "inferred";
    case LocalFlowArbiter::Live::kExplicit:
      return "explicit";
    case LocalFlowArbiter::Live::kBoth:
      return "both";
  }
  return "both";
}

void LocalFlowArbiter::arbitrate(std::span<const FlowID> in, const char* plugin, Rank rank,
                                 std::vector<FlowID>& out, Tally* tally) {
  Tally scratch;
  Tally& t = tally ? *tally : scratch;
  for (const auto& f : in) {
    if (f.origin != FlowOrigin::kLocal) {
      out.push_back(f);
      out.back().plugin = plugin;
      continue;
    }
    one(f, plugin, rank, out, t);
  }
}

std::vector<FlowID> LocalFlowArbiter::live_reports(std::string_view plugin) const {
  std::vector<FlowID> starts;
  table_.for_each([&](const FlowKey&, const Entry& e) {
    for (const auto& report : e.by_rank)
      if (report.live && report.start.plugin && plugin == report.start.plugin)
        starts.push_back(report.start);
  });
  return starts;
}

void LocalFlowArbiter::one(const FlowID& f, const char* plugin, Rank rank, std::vector<FlowID>& out,
                           Tally& tally) {
  const auto r = static_cast<int>(rank);
  const FlowKey key = FlowKey::of(f);
  Entry* e = table_.find(key);
  auto count = [&](Outcome o, std::uint64_t n = 1) {
    tally.outcomes[static_cast<std::size_t>(o)] += n;
  };
  auto pass = [&] {
    out.push_back(f);
    out.back().plugin = plugin;
    count(Outcome::kPassed);
  };
  auto add = [&](FlowID made) {
    out.push_back(std::move(made));
    count(Outcome::kAdded);
  };
  if (f.state == FlowState::kStart) {
    if (!e)
      e = table_
              .emplace(key, Entry{},
                       [&](const FlowKey& k, Entry& old) {
                         const bool both = old.by_rank[0].live && old.by_rank[1].live;
                         const Live live = both                  ? Live::kBoth
                                           : old.by_rank[1].live ? Live::kExplicit
                                                                 : Live::kInferred;
                         ++tally.evicted[static_cast<std::size_t>(live)];
                         if (!tally.first_evicted) tally.first_evicted = k;
                       })
              .first;
    const int before = e->visible();
    Report& mine = e->by_rank[r];
    mine.start = f;
    mine.start.plugin = plugin;
    mine.live = true;
    if (before == r || before < 0) return pass();  // a first or a repeated start
    if (r < before) return count(Outcome::kHeld);  // held while the explicit report is live
    // The explicit report takes the flow over: the inferred one's flow ends where it begins.
    const TimePoint at = f.start_time.value_or(Clock::now());
    add(end_of(e->by_rank[before].start, at));
    return pass();
  }
  if (f.state == FlowState::kEnd) {
    if (!e || !e->by_rank[r].live) return pass();  // not known (evicted, or never started)
    const bool visible = e->visible() == r;
    e->by_rank[r].live = false;
    const int next = e->visible();
    if (visible) {
      pass();
      if (next >= 0) add(restart_of(e->by_rank[next].start, f.end_time.value_or(Clock::now())));
    } else {
      count(Outcome::kDropped);
    }
    if (next < 0) table_.erase(key);
    return;
  }
  // Ongoing: only the report the backends follow.
  if (!e || e->visible() == r)
    pass();
  else
    count(Outcome::kDropped);
}

}  // namespace flowd
