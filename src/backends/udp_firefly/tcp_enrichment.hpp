// SPDX-License-Identifier: Apache-2.0
// `netlink = yes` (legacy UDP_FIREFLY_NETLINK): TCP details from sock_diag in start, end and
// ongoing fireflies, as the Python original's netlink section. A start looks its socket up by
// 4-tuple (either end may be local); an end uses a fresh lookup while the socket lingers, else the
// last values seen; with `ongoing_interval`, one dump refreshes every tracked flow and yields its
// `ongoing` event. Bounded (FlowTable, max_tracked_flows): beyond it the oldest-inserted flow is
// forgotten (no more ongoing fireflies, and its end carries only a fresh lookup), counted in
// overflow(). Single-threaded: the udp_firefly backend's thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/flow_table.hpp"
#include "firefly/firefly_message.hpp"
#include "flowd/flow_id.hpp"
#include "netlink/sock_diag.hpp"

namespace flowd::udp_firefly {

// The "netlink" JSON object: the socket and its tcp_info, with the original's field names and units
// (rto, ato, rttvar, rcv_rtt in milliseconds; rto null while 3 s, snd_ssthresh null while
// infinite; tcp_info.rtt in microseconds as the original). With tcp_info it also has a top-level
// "rtt": the smoothed round-trip time in milliseconds with microsecond decimals, where XRootD puts
// it and the Scitags collector reads it (spec/flowd.md §4: xrootd fireflies carry netlink{rtt}).
std::string netlink_json(const netlink::SockEntry& e, const netlink::TcpDetails& d);
// The firefly's "usage" from this host's socket, nullopt without tcp_info: received =
// tcpi_bytes_received; sent = tcpi_bytes_acked, not tcpi_bytes_sent, because bytes_sent counts
// every transmission including retransmits (and data still in flight), so on a lossy path it
// overstates what was transferred; bytes acked is what the peer got, once. Both are sequence-number
// counts: the SYN and FIN count one byte each.
std::optional<firefly::FireflyUsage> usage_of(const netlink::TcpDetails& d);

// What an event's firefly gets from the socket: both empty when the socket is unknown.
struct TcpReport {
  std::string netlink;                         // the "netlink" object, "" when unknown
  std::optional<firefly::FireflyUsage> usage;  // "usage", when tcp_info was read
};

class TcpEnrichment {
 public:
  TcpEnrichment(std::chrono::seconds ongoing_interval, std::size_t max_flows)
      : ongoing_(ongoing_interval), flows_(max_flows) {}
  // Opens the netlink socket (before READY=1, so a failure stops the start).
  void open() { diag_.emplace(); }
  // The netlink object and usage for this event's firefly (empty when the socket is unknown).
  TcpReport on_event(const FlowID& flow);
  std::chrono::seconds ongoing_interval() const { return ongoing_; }
  // One dump: fresh details for every tracked flow whose socket is here, and its ongoing event.
  void ongoing_events(std::vector<FlowID>& out);
  std::size_t tracked() const { return flows_.size(); }
  // A reload's predecessor's flows (their start and the last details seen), oldest first, so that
  // the flows live across the reload keep their ongoing fireflies and their end's last details.
  // Into a smaller table the oldest are forgotten (counted in overflow()).
  void take_over(TcpEnrichment&& old);
  // A TCP flow live before this table existed (one the daemon's status lists: the backend was added
  // by a reload), followed from now on as if its start had come here, unless already followed; its
  // details come with the next dump. A full table forgets its oldest, counted in overflow().
  void remember(const FlowID& start);
  // Flows forgotten to make room (the table was full).
  std::uint64_t overflow() const { return flows_.overflow(); }

 private:
  struct Tracked {
    FlowID start;
    TcpReport last;  // last details seen; empty before the socket was found
  };
  TcpReport lookup(const FlowID& flow);

  std::chrono::seconds ongoing_;
  std::optional<netlink::SockDiag> diag_;
  FlowTable<FlowKey, Tracked, FlowKeyHash> flows_;
};

}  // namespace flowd::udp_firefly
