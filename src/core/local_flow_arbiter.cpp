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

// An end or ongoing event the backends get carries the start time of the start they saw of its
// flow.
void stamp_start(FlowID& event, const FlowID& start) {
  if (start.start_time) event.start_time = start.start_time;
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

FlowKey LocalFlowArbiter::key_of(const FlowID& f) {
  return {f.protocol, IpAddress{}, unmapped(f.dst), f.src_port, f.dst_port};
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
  const FlowKey key = key_of(f);
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
  constexpr int kExplicit = static_cast<int>(Rank::kExplicit);
  if (f.state == FlowState::kStart) {
    if (r == kExplicit) explicit_ended_.erase(key);
    if (!e)
      e = table_
              .emplace(key, Entry{},
                       [&](const FlowKey&, Entry& old) {
                         const bool both = old.by_rank[0].live && old.by_rank[1].live;
                         const Live live = both                  ? Live::kBoth
                                           : old.by_rank[1].live ? Live::kExplicit
                                                                 : Live::kInferred;
                         ++tally.evicted[static_cast<std::size_t>(live)];
                         // Named as the backends know it (the key has no source).
                         if (!tally.first_evicted)
                           tally.first_evicted =
                               FlowKey::of(old.by_rank[std::max(old.visible(), 0)].start);
                       })
              .first;
    const int before = e->visible();
    Report& mine = e->by_rank[r];
    mine.start = f;
    mine.start.plugin = plugin;
    mine.live = true;
    mine.closed = false;
    if (before == r || before < 0) return pass();  // a first or a repeated start
    if (r < before) return count(Outcome::kHeld);  // held while the explicit report is live
    // The explicit report takes the flow over: the inferred one's flow ends where it begins.
    const TimePoint at = f.start_time.value_or(Clock::now());
    add(end_of(e->by_rank[before].start, at));
    pass();
    // Its start is never stamped before the end just published either.
    if (out.back().start_time) out.back().start_time = out[out.size() - 2].end_time;
    mine.start.start_time = out.back().start_time;
    return;
  }
  if (f.state == FlowState::kEnd) {
    if (!e) {
      // A tool's retry of an end that went through: its flow is over.
      if (r == kExplicit && explicit_ended_.contains(key)) return count(Outcome::kDropped);
      return pass();  // not known (evicted, or never started here)
    }
    if (!e->by_rank[r].live) return count(Outcome::kDropped);  // the other report's flow
    const bool visible = e->visible() == r;
    Report& mine = e->by_rank[r];
    mine.live = false;
    if (r == kExplicit) explicit_ended_.emplace(key, true);
    const int next = e->visible();
    if (visible) {
      pass();
      // The backends know the flow by the 5-tuple its start gave (a tool may spell its end's
      // addresses otherwise: IPv4-mapped, another local address).
      out.back().src = mine.start.src;
      out.back().dst = mine.start.dst;
      out.back().end_time = not_before(mine.start, f.end_time.value_or(Clock::now()));
      // And by the start they saw (a hand-back's time, not the connection's), which a backend
      // that forgot it still gets (issue 15 E5).
      stamp_start(out.back(), mine.start);
      if (next >= 0 && hand_back(e->by_rank[next])) {
        restart(e->by_rank[next], *out.back().end_time, out);
        count(Outcome::kAdded);
      }
    } else {
      count(Outcome::kDropped);
    }
    if (!e->any_live()) table_.erase(key);
    return;
  }
  // Ongoing: only the report the backends follow.
  if (!e || e->visible() == r) {
    pass();
    // A pipe or API line's ongoing has no start time: the start's, as for an end.
    if (e && !out.back().start_time) stamp_start(out.back(), e->by_rank[r].start);
  } else {
    count(Outcome::kDropped);
  }
}

bool LocalFlowArbiter::hand_back(Report& next) {
  if (!still_open_ || still_open_(next.start)) return true;
  next.closed = true;
  return false;
}

void LocalFlowArbiter::restart(Report& report, TimePoint at, std::vector<FlowID>& out) {
  out.push_back(restart_of(report.start, at));
  report.start.start_time = at;  // what the backends saw: its end is never stamped before it
}

void LocalFlowArbiter::note_ended(std::span<const FlowID> ends) {
  for (const auto& f : ends)
    if (!table_.find(key_of(f))) explicit_ended_.emplace(key_of(f), true);
}

void LocalFlowArbiter::forget(const char* plugin, std::vector<FlowID>& out) {
  constexpr int kExplicit = static_cast<int>(Rank::kExplicit);
  std::vector<FlowKey> gone;
  const TimePoint now = Clock::now();
  table_.for_each([&](const FlowKey& key, Entry& e) {
    Report& report = e.by_rank[kExplicit];
    if (!report.live || std::strcmp(report.start.plugin, plugin) != 0) return;
    report.live = false;
    explicit_ended_.emplace(key, true);
    out.push_back(end_of(report.start, now));
    if (e.visible() == 0 && hand_back(e.by_rank[0]))
      restart(e.by_rank[0], *out.back().end_time, out);
    else if (!e.any_live())
      gone.push_back(key);
  });
  for (const auto& key : gone) table_.erase(key);
}

}  // namespace flowd
