// SPDX-License-Identifier: Apache-2.0
// Two plugins of this host reporting the same connection (issue 15): np_api or the API (an explicit
// report: the transfer tool knows its transfer and its tag) and a connection plugin (kernel,
// netlink, netstat, iperf: a report inferred from the socket and a rule). The backends key a local
// flow by its 5-tuple whoever reported it (the marker's entry, udp_firefly's start time, the
// active-flow tables), so two unarbitrated reports made a second start, an end that removed the
// other's mark and start time, and a flow left active or unmarked. The bus passes every local
// event of a plugin through one LocalFlowArbiter, which keeps, per 5-tuple, the live report of
// each rank and lets the backends see one flow at a time: the explicit one while it is live, else
// the inferred one.
//
//   inferred start        → its start
//   explicit start        → the inferred flow's end (at the explicit start time), the explicit
//   start explicit end          → its end, then the inferred flow's start again (at that time), if
//   live inferred start or end while the explicit report is live → nothing (held: it follows on
//   later)
//
// So every end has the start of its own report before it, and a connection a rule covers is
// marked and listed active for as long as its inferred report is live. A hand-back is made only
// to a connection still open (StillOpen, core/connection_check.hpp): the inferring plugin may learn
// of a close after the tool's end (it was being restarted by a reload, or it polls), and handing a
// closed connection back made a phantom flow, started at the tool's end and ended by the plugin's
// late end (try15d D6). Such an inferred report stays live but unseen; its end is dropped. An end
// whose own report is not live while the other report is (a repeated end, an end without a start, a
// tool's end for a transfer it started before a restart) is dropped: it would end the other
// report's flow. So is an explicit end repeated after its report ended with no other report left (a
// tool's retry of an end that went through: the flow is over, the backends would take it for one
// without a start). The two reports' times come from different clocks (a pipe line's reading, the
// kernel's state change): an end is never stamped before the start the backends saw of that flow.
// An end passed on carries that start's time (a hand-back's time for a handed-back flow, not the
// connection's), and so does an ongoing event without a start time of its own, so a backend that
// forgot the start — udp_firefly's table made smaller by a reload — still sends the start time it
// announced (issue 15 E5).
//
// A connection is keyed as the marker keys it (the peer, the ports, the protocol; an IPv4-mapped
// address as its IPv4 one), not by the whole 5-tuple: a tool that names another of this host's
// addresses, or the mapped form, reports the same connection and the same map entry.
// Not thread-safe by itself: the bus calls it under its own mutex.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/flow_table.hpp"
#include "flowd/flow_id.hpp"

namespace flowd {

class LocalFlowArbiter {
 public:
  enum class Rank : std::uint8_t { kInferred = 0, kExplicit = 1 };
  // At most this many 5-tuples are remembered (the oldest evicted: its next event passes as is).
  static constexpr std::size_t kCapacity = 65536;
  // At most this many explicit reports that ended are remembered, so that a retry of their end is
  // dropped (the oldest forgotten: a retry of its end passes as an end of an unknown flow).
  static constexpr std::size_t kEndedCapacity = 4096;

  // What became of one local event a plugin published (flowd_local_flow_arbiter_events_total),
  // and what the arbiter made itself. Of a plugin's local events, passed + held + dropped are all
  // it published; the backends get passed + added.
  enum class Outcome : std::uint8_t {
    kPassed,   // to the backends as published
    kHeld,     // a start kept back while the other report is the one the backends follow
    kDropped,  // an end or ongoing of a report the backends do not follow (its start was held, or
               // its end was already made at a hand-over), or an explicit report's end repeated
               // after it ended: nothing for the backends
    kAdded,    // an end or a start the arbiter made at a hand-over (another plugin's report)
  };
  static constexpr std::size_t kOutcomes = 4;
  // Which reports an entry evicted at kCapacity held live
  // (flowd_local_flow_arbiter_evictions_total): `kBoth` lost a held report, whose events then reach
  // the backends unarbitrated.
  enum class Live : std::uint8_t { kInferred, kExplicit, kBoth };
  static constexpr std::size_t kLives = 3;
  // Counts of one arbitrate() call.
  struct Tally {
    std::array<std::uint64_t, kOutcomes> outcomes{};
    std::array<std::uint64_t, kLives> evicted{};
    std::optional<FlowKey> first_evicted;  // the 5-tuple of the first entry evicted, for the log
  };

  // Whether the connection an inferred report started is still open, asked before the connection
  // is handed back to it; false only when it is known closed (the plugin's end is on its way).
  using StillOpen = std::function<bool(const FlowID& start)>;
  // `still_open` unset: every hand-back is made (unit tests of the order of events).
  explicit LocalFlowArbiter(StillOpen still_open = {}) : still_open_(std::move(still_open)) {}

  // Appends to `out` what the backends get for `in`, one plugin's batch: each event with its
  // FlowID::plugin set (`plugin` for the plugin's own events, the other report's plugin for what
  // the arbiter adds). Events of other origins than local pass unchanged (not counted). `tally`,
  // when given, receives the counts of this call added to what it holds.
  void arbitrate(std::span<const FlowID> in, const char* plugin, Rank rank,
                 std::vector<FlowID>& out, Tally* tally = nullptr);
  // A plugin removed by a reload (no successor): its live explicit reports end now (nobody else
  // will end them), each giving the connection back to a live inferred report. Appends to `out`.
  void forget(const char* plugin, std::vector<FlowID>& out);
  std::size_t size() const { return table_.size(); }
  // Ends made outside the arbiter for connections it does not follow (the flow journal's, at a
  // start): an explicit report's later end of one of them is dropped, as a retry of an end that
  // went through.
  void note_ended(std::span<const FlowID> ends);
  // The start of every live report of `plugin` (by name), whether the backends see it or not: a
  // reload's successor takes them over (an explicit report may hide the inferred one).
  std::vector<FlowID> live_reports(std::string_view plugin) const;
  // The connection's key: the peer, the ports and the protocol, IPv4-mapped addresses unmapped.
  static FlowKey key_of(const FlowID& f);

 private:
  struct Report {
    FlowID start;  // the report's start event as published (its tag, times, plugin)
    bool live = false;
    // Live, but its connection was closed when it would have been handed back: the backends no
    // longer follow it, and its own end, still to come, is dropped.
    bool closed = false;
  };
  struct Entry {
    Report by_rank[2];
    int visible() const {  // the rank the backends see, or -1
      return by_rank[1].live ? 1 : by_rank[0].live && !by_rank[0].closed ? 0 : -1;
    }
    bool any_live() const { return by_rank[0].live || by_rank[1].live; }
  };
  // Whether the connection of `next`, about to be handed back, is still open; if not, `next` is
  // closed (and the hand-back not made).
  bool hand_back(Report& next);
  void one(const FlowID& f, const char* plugin, Rank rank, std::vector<FlowID>& out, Tally& tally);
  // Publishes `report`'s flow again at `at`, after the explicit one ended.
  static void restart(Report& report, TimePoint at, std::vector<FlowID>& out);

  StillOpen still_open_;
  FlowTable<FlowKey, Entry, FlowKeyHash> table_{kCapacity};
  // The connections whose explicit report ended, until an explicit start of them.
  FlowTable<FlowKey, bool, FlowKeyHash> explicit_ended_{kEndedCapacity};
};

// The label values: passed, held, dropped, added; inferred, explicit, both.
std::string_view to_string(LocalFlowArbiter::Outcome o);
std::string_view to_string(LocalFlowArbiter::Live l);

}  // namespace flowd
