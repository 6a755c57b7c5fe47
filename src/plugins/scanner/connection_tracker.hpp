// SPDX-License-Identifier: Apache-2.0
// The scanners' state machine (the Python netstat/netlink plugins, without their bugs): each scan
// lists the TCP connections of the host; a connection reaching ESTABLISHED is a `start`, one that
// enters a closing state (the kernel plugin: that can carry no more data) or disappears is an
// `end`. Connections present at the first scan are
// adopted silently unless report_existing is set. Single-threaded (the plugin's thread).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "flowd/daemon_status.hpp"
#include "flowd/flow_id.hpp"
#include "plugins/scanner/connection_filter.hpp"

namespace flowd::scanner {

struct Connection {
  IpAddress local, remote;
  std::uint16_t local_port = 0, remote_port = 0;
  std::uint8_t state = 0;  // TcpState
  std::uint32_t inode = 0;
  // The kernel's socket cookie (sock_diag's idiag_cookie, the kernel plugin's record); 0 when the
  // source has none (netstat). Tells a socket from a later one on the same 4-tuple.
  std::uint64_t cookie = 0;
  // The name (comm, NUL-padded) of the process that owns it, where the source says (the kernel
  // plugin: the process that called connect() or listen()); empty otherwise.
  std::array<char, 16> comm{};
};

struct Tag {
  std::uint16_t experiment = 0, activity = 0;
};

// Chooses the tag of a connection that is starting; nullopt: the connection is not reported, unless
// the tagger sets `retry` (it cannot decide yet, e.g. the socket has no owner yet): asked again
// next scan.
using Tagger = std::function<std::optional<Tag>(const Connection&, bool& retry)>;

class ConnectionTracker {
 public:
  ConnectionTracker(ConnectionFilter filter, bool report_existing, Tagger tagger)
      : filter_(std::move(filter)), report_existing_(report_existing), tagger_(std::move(tagger)) {}

  // One scan: call observe() for every connection, then finish() for the events.
  void observe(const Connection& c, TimePoint now, std::vector<FlowID>& out);
  void finish(TimePoint now, std::vector<FlowID>& out);
  // Before the first scan: the flows this plugin's predecessor started and did not end (a reload
  // restarted the plugin; DaemonStatus::reported_flows lists them, `plugin` names them). They count
  // as started, not adopted: the first scan ends those that closed meanwhile, and a later close
  // ends the others, so no start is left without its end. Returns how many were taken over.
  std::size_t inherit(std::span<const ActiveFlow> flows, std::string_view plugin);

  // Before the first scan: the connections the flow journal hands this plugin to start again
  // (DaemonStatus::take_restarts). The first scan starts each one it lists open as a new
  // connection, this tracker's tagger deciding its tag (as of now, not the journal's), where it
  // adopts the other connections older than it silently; one this tracker's filter excludes is
  // left to the scan as any other (ignored). One inherited or expected already is left as it is.
  // Returns how many are expected (the filter accepts them).
  std::size_t expect_restarts(std::span<const PendingRestart> restarts);

  // Event-driven use (the kernel plugin), between scans: the kernel says `c` reached ESTABLISHED
  // at `when`. A new connection is filtered and tagged (a `start`); one a scan adopted or saw
  // before it was established is started too (the event proves it is newer than flowd); one
  // already started (a resync scan saw it first) gives nothing. True when the connection is
  // started after the call (reported, with a tag); false when it is filtered out or untagged.
  bool established(const Connection& c, TimePoint when, std::vector<FlowID>& out);
  // A resync's dump is applied after the ring records read while it ran (the kernel plugin): what
  // those records said of `key` is newer than the dump, so the next finish() leaves it as they
  // left it (not ended for being absent from the dump). Nothing when `key` is not tracked.
  void keep(const FlowKey& key);
  // The kernel says `c` reached CLOSE at `when` (from ESTABLISHED or a state after it): its `end`
  // if it was started; forgotten either way (the kernel sends nothing more about the socket).
  void closed(const Connection& c, TimePoint when, std::vector<FlowID>& out);

  // Takes what `predecessor` followed (a reload's handover: every connection it started, adopted or
  // ignored, and how many scans it made), keeping this tracker's own filter, tagger and
  // report_existing for what comes next. Only before this tracker's first scan.
  void take_over(ConnectionTracker&& predecessor);

  // The plugin stops and no successor takes over (a reload removed it, or the daemon stops): every
  // started connection's `end` at `now`, as the netflow plugin does at its stop. The connections
  // stay tracked (as ended).
  void end_all(TimePoint now, std::vector<FlowID>& out);
  // After take_over() or inherit(): what this tracker's own filter excludes (a reload added an
  // internal network, or turned ignore_private on) is no longer reported, so a connection the
  // predecessor started there gets its `end` at `now`. `ended`, when given, receives their keys.
  void end_excluded(TimePoint now, std::vector<FlowID>& out, std::vector<FlowKey>* ended = nullptr);
  // What retag() did: connections started again with the tag the tagger gives them now, and
  // connections it tags no more (ended only).
  struct Retagged {
    std::size_t changed = 0, untagged = 0, started = 0;
  };
  // After take_over() or inherit(): a started connection the tagger now tags otherwise (a reload
  // changed its local port's rule or the fixed tag) gets its `end` at `now` and, if it is still
  // tagged, a `start` at `now` with the new tag; the marker takes the old label out at the end and
  // writes the new one at the start (try16b F3: before, it kept the old tag and label until it
  // closed). A live connection the old tagger gave no tag, or the old filter excluded, and that
  // this tracker reports is started (try17a F1, try17b F1: before, a rule added or an exclusion
  // lifted by a reload never covered open connections). The tagger is asked with the
  // 4-tuple, the cookie and the owner's name kept from the start; `decide`, when given, is asked
  // instead, and says retry for a connection whose tag is to stay as it is (the kernel plugin's
  // owned ones, whose pair was drawn). Not for a tagger that draws every tag (iperf's).
  Retagged retag(TimePoint now, std::vector<FlowID>& out, const Tagger* decide = nullptr);
  // Event-driven use (the kernel plugin), whose connection is live from ESTABLISHED until the
  // kernel moves its socket to CLOSE (closed()): a scan takes a socket in a state that can still
  // carry data (netlink::carries_data: FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK) as
  // established, and one past it (TIME-WAIT, CLOSE, an orphaned FIN-WAIT-2) as closed: it gets no
  // further event from the kernel, so the scan forgets it (ending it if started) instead of
  // keeping it until a later scan no longer lists it, which for the kernel plugin is the next
  // ring-buffer loss, possibly never.
  void follow_until_close(bool on) { until_close_ = on; }

  // The connections it reports as started now, each as its `start` event (start_time `now`: the
  // tracker keeps no time), in no particular order: for a marker that did not hear their starts
  // (the kernel plugin, when the marker's map appears while it runs).
  std::vector<FlowID> started_flows(TimePoint now) const;

  std::size_t tracked() const { return used_; }
  std::size_t started() const { return started_; }
  bool first_scan_done() const { return scans_ > 0; }

 private:
  enum class Status : std::uint8_t { kPending, kStarted, kEnded, kIgnored, kAdopted };
  enum class Slot : std::uint8_t { kEmpty, kUsed, kDeleted };
  // One open-addressing slot: every poll looks up every connection of the host, so the table is
  // flat (one cache miss per lookup) instead of node-based. Not a FlowTable
  // (common/flow_table.hpp), deliberately: this table mirrors the kernel's socket list, which
  // bounds it, and each finish() drops what the last scan did not list. No overflow policy fits a
  // mirror: evicting an entry would make the next scan take a known connection for a new one (a
  // second start), and refusing one would lose its end.
  struct Tracked {
    FlowKey key;
    std::uint32_t generation = 0;
    Status status = Status::kPending;
    Slot slot = Slot::kEmpty;
    Tag tag;
    std::uint64_t cookie = 0;  // of the socket last seen on this 4-tuple; 0: unknown
    // Its start's time (the epoch until started), put on its end too: a backend that forgot the
    // start (udp_firefly's max_tracked_flows made smaller by a reload) still has it (issue 15 E5).
    TimePoint started{};
    // Its owner's name as the source said at its start (Connection::comm), for retag().
    std::array<char, 16> comm{};
    // Ignored while open because the tagger gave it no tag or the filter excluded it (not: adopted
    // at flowd's start, closed unseen): a reload's tagger and filter may report it (retag()).
    bool untagged = false;
  };
  FlowID event(const Tracked& t, FlowState state, TimePoint now) const;
  // The slot of `key`, inserting it (generation 0) if absent; `fresh` says which.
  Tracked& find_or_insert(const FlowKey& key, bool& fresh);
  const Tracked* find(const FlowKey& key) const;  // null when not tracked
  void rehash(std::size_t capacity);
  void start(Tracked& t, const Connection& c, TimePoint now, std::vector<FlowID>& out);
  // When `c` is another socket than the one `t` followed (both cookies known and different: the
  // 4-tuple was reused, and the first socket's end was lost or is still to come), ends the first
  // (if started) at `now` and makes `t` new again. True when it did.
  bool renew_if_reused(Tracked& t, const Connection& c, TimePoint now, std::vector<FlowID>& out);
  void erase(Tracked& t);

  ConnectionFilter filter_;
  bool report_existing_;
  bool until_close_ = false;
  Tagger tagger_;
  std::uint32_t scans_ = 0;
  std::size_t started_ = 0;
  std::vector<Tracked> slots_ = std::vector<Tracked>(64);
  std::size_t used_ = 0, deleted_ = 0;
};

}  // namespace flowd::scanner
