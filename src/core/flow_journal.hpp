// SPDX-License-Identifier: Apache-2.0
// The flow journal: the local flows' live reports (the LocalFlowArbiter's, by plugin and rank),
// kept in `work_dir` so that a flowd killed with -9 (or one that stopped cleanly while np_api or
// api reports were live) is followed by one that knows what the collector was told (issue 15 E3).
// At a start, the reports the previous flowd left live are read back (Runtime): those whose
// plugin runs again and whose connection is still open (the same socket, where the journal has its
// cookie) are restored in the arbiter and the status board, so that the plugins follow them on
// (their close gives the end); the others end then.
//
// File: <work_dir>/flows.<netns inode>.journal, mode 0600, one line per event, appended with one
// write(2) per published batch (O_APPEND). No fsync: the page cache survives kill -9, which is
// the case the journal is for; after a power loss the connections are gone anyway. Bounded: past
// max(1 MiB, 4 x the live set), the live set is written to a fresh file renamed over it
// (replace_file_atomically). A lock on <path>.lock (flock) keeps a second flowd of the same
// network namespace and work_dir from sharing it: that one runs without a journal.
//
// Lines (fields separated by one space; the last line may be cut short by the kill):
//   P <pid>                                                          the flowd writing from here on
//   S <plugin> <i|e> <tcp|udp> <src> <sport> <dst> <dport> <exp> <act> <start usec|-> [cookie=<n>]
//                                                                                       a start
//   E <plugin> <i|e> <tcp|udp> <src> <sport> <dst> <dport>                               an end
//   X <pid>                                the flowd stops: the ends that follow are its stop's
//   R <plugin> i <tcp|udp> <src> <sport> <dst> <dport> <exp> <act> <start usec|-> [cookie=<n>]
//                 a connection to start again (a report a stop ended, found open at a start), kept
//                 by the rewrite at a start until its plugin takes it (try15j D1)
//   W <bytes> <fnv1a64, 16 hex>   only as the second line, after the P line: the file was written
//                 over in place (no room for a new one beside it: a full work_dir), and the <bytes>
//                 after this line, with that hash, are its content; what follows them is the old
//                 content's rest, not cut yet when flowd was killed (not read). Once the file is
//                 cut to that length, the W becomes a `w` (sealed): the lines after it are read on,
//                 appends included. A hash that does not match: the rewrite itself was cut short
//                 (its start, then the old content: read as it is, with a warning).
// `i`/`e`: the inferred or explicit rank of the report (local_flow_arbiter.hpp). `cookie=<n>`: the
// kernel's socket cookie of the connection (FlowID::socket_cookie, decimal, never 0), written where
// the plugin knew it (kernel, netlink): a restart that finds the 4-tuple open on another socket
// knows the journaled connection closed and the 4-tuple was reused (try15g 3). Absent in the
// journals of flowds before it, which still parse. A flowd before it reads an S line with a cookie
// as malformed (skipped and counted): that report is then neither followed nor ended by it.
#pragma once

#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/unique_fd.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/log.hpp"
#include "flowd/reason_counters.hpp"

namespace flowd {

// One parsed journal line.
struct JournalLine {
  enum class Kind : std::uint8_t { kPid, kStart, kEnd, kStop, kRestart };
  Kind kind = Kind::kPid;
  long pid = 0;        // kPid, kStop
  std::string plugin;  // kStart, kEnd
  bool explicit_rank = false;
  FlowID flow;  // kStart: the start as published (plugin unset); kEnd: its addresses
};

// Parses one line without its newline; false for anything but the forms above exactly (an
// unknown kind, a field missing or extra, a number out of range, a cookie of 0, a plugin name not
// of [a-z0-9_]{1,32}, more than kMaxLine bytes). Never throws.
bool parse_journal_line(std::string_view line, JournalLine& out);
inline constexpr std::size_t kMaxJournalLine = 512;
// The lines for a start or an end of `plugin`'s report (with the newline); a start's carries
// f.socket_cookie when it is known (not 0).
std::string journal_start_line(const FlowID& f, std::string_view plugin, bool explicit_rank);
std::string journal_end_line(const FlowID& f, std::string_view plugin, bool explicit_rank);
// The R line of a connection to start again (a start line's fields).
std::string journal_restart_line(const FlowID& f, std::string_view plugin);
// The W line of an in-place rewrite whose content after it is `content`.
std::string journal_in_place_line(std::string_view content);

// A report the previous flowd left live.
struct JournalReport {
  std::string plugin;
  bool explicit_rank = false;
  FlowID start;  // state kStart, origin local, plugin unset
};

// Why a line read back was skipped (flowd_flow_journal_lines_skipped_total{reason}).
enum class JournalSkip : std::uint8_t { kTruncated, kMalformed };
inline constexpr std::size_t kJournalSkips = 2;
std::string_view to_string(JournalSkip s);
// What the journal could not keep (flowd_flow_journal_failures_total{reason}): an append that
// failed (disk full, I/O error), a rewrite of the whole file that did, a start not kept because
// the journal held its most live reports, a start of flowd that could not open the journal for
// writing (a read-only work_dir, permissions: no journal that run).
enum class JournalFailure : std::uint8_t { kWriteFailed, kRewriteFailed, kFull, kUnwritable };
inline constexpr std::size_t kJournalFailures = 4;
std::string_view to_string(JournalFailure f);

// What the previous run left, read by replay().
struct JournalReplay {
  long pid = 0;  // the last P line; 0 if none
  std::vector<JournalReport> live;
  // The inferred reports the previous flowd's stop ended (a connection plugin with no successor
  // ends its flows at the stop): started again by a restart that finds their connection open
  // (try15f D2), so that a clean restart does not leave them unreported and unmarked.
  std::vector<JournalReport> stopped;
  // The last run wrote its X line: it stopped cleanly (what it left live, it left on purpose: the
  // tools' flows, which outlive a restart), not killed.
  bool stopped_cleanly = false;
  std::uint64_t truncated = 0, malformed = 0;
  // An in-place rewrite (W line): the bytes of the old content after it, not read (a kill before
  // the file was cut to its length); whether the rewrite itself was cut short (read as it is).
  std::uint64_t old_rest_bytes = 0;
  bool rewrite_cut = false;
  // The file was behind what the previous flowd reported when it stopped (a write had failed, and
  // no rewrite from memory worked since), or gone: the lock file's owner execute bit, set while
  // the journal is stale (a change of mode needs no block of a full disk, and the lock file stays
  // when the journal is removed). Set by FlowJournal::open().
  bool behind = false;
};
// Replays the journal text `body` (from `path`, named in the log): the reports started and not
// ended, in the order of their starts. Bad lines are skipped, counted and logged (the first few,
// with their line number).
JournalReplay replay_journal(std::string_view body, const std::string& path);

class FlowJournal {
 public:
  explicit FlowJournal(prometheus::Registry& metrics);
  ~FlowJournal();
  FlowJournal(const FlowJournal&) = delete;
  FlowJournal& operator=(const FlowJournal&) = delete;

  // "<work_dir>/flows.<netns inode>.journal"; empty when work_dir is.
  static std::string path_for(const std::string& work_dir);

  // At the daemon's start: takes the lock and reads what the previous run left (its reports are
  // returned; nothing is written until start_writing()). False when there is no journal (empty
  // work_dir, another flowd holds the lock, the file cannot be used: said in the log).
  bool open(const std::string& work_dir, JournalReplay& previous);
  // After the recovery: the live set recorded so far (the restored reports) replaces the file, and
  // every record() from then on is appended.
  void start_writing();
  bool active() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // One plugin's local batch as published (starts and ends; ongoing events are not kept). Called
  // under the bus's mutex.
  // What becomes of the batch's ends: written now (kWrite); kept ending (kDefer: the report stays
  // in the journal, its end line written by a later kSent call once the backends have sent the end,
  // try15i B; a start of the same connection before that writes it first); or written now for
  // those kept ending (kSent).
  enum class Ends : std::uint8_t { kWrite, kDefer, kSent };
  void record(std::span<const FlowID> flows, std::string_view plugin, bool explicit_rank,
              Ends ends = Ends::kWrite);
  // record(..., Ends::kSent) for many batches with one write: note_sent() each, then write_sent().
  // Called under the bus's mutex.
  void note_sent(std::span<const FlowID> ends, std::string_view plugin, bool explicit_rank);
  void write_sent();
  // The reports a start's recovery ends (FlowID::plugin names each one's plugin, `explicit_rank`
  // its rank, 0 or 1): `sent` false, before start_writing(), kept live as the previous flowd wrote
  // them, so that the rewrite keeps them; `sent` true, once the backends have processed their
  // ends (Bus::publish_recovered_ends), their end lines. A kill between the two leaves them to the
  // next start, which ends them again (try15i A).
  void record_recovered(std::span<const FlowID> ends, std::span<const std::uint8_t> explicit_rank,
                        bool sent);
  // At a start, before start_writing(): the connections handed to their plugins to start again
  // (FlowID::plugin names whose; DaemonStatus::take_restarts), kept in the journal as R lines
  // until restarts_taken() for their plugin, so that a start that dies before its plugins' first
  // dumps leaves them to the next one (try15j D1). At most as many as live reports.
  void keep_restarts(std::span<const FlowID> restarts);
  // `plugin`'s first dump started its connections to start again (their start lines are written),
  // or its configuration left them out: the journal is rewritten without their R lines. Called
  // under the bus's mutex.
  void restarts_taken(std::string_view plugin);
  // The daemon stops (Runtime::stop_all): the ends recorded from now on are the stop's. Called
  // under the bus's mutex.
  void stopping();
  // The file is behind what flowd reported (a write failed): rewritten from memory at the next
  // record(), or by repair_if_due(). Called under the bus's mutex.
  bool stale() const { return stale_; }
  // Readable (an eventfd) once the file went stale: the daemon's main loop waits on it.
  int stale_fd() const { return stale_event_.get(); }
  // A stale file rewritten from memory, unless the last try was less than a second ago (the daemon
  // calls it while idle: nothing else retries without a flow to record). Under the bus's mutex.
  void repair_if_due();
  // The recovery's count of what became of each report left live, and of the stop's reports
  // started again.
  void count_recovered(std::uint64_t followed, std::uint64_t ended, std::uint64_t restarted);
  std::size_t live_size() const { return live_.size(); }
  // A static copy of a plugin name read from the journal, for FlowID::plugin (at most 64 names are
  // kept; others are "journal").
  static const char* static_name(std::string_view plugin);
  // A report's identity: its plugin, rank and the arbiter's key of its connection.
  static std::string key_of(std::string_view plugin, bool explicit_rank, const FlowID& f);

 private:
  // One report's start or end into batch_ and live_.
  void note(const FlowID& f, std::string_view plugin, bool explicit_rank, Ends ends = Ends::kWrite);
  // batch_ to the file (once writing), compacting when it grew past its bound; while the file is
  // stale, a rewrite instead (at most once a second).
  void write_batch();
  // False when the write failed: the file is stale from then on.
  bool append(const std::string& text);
  // The size past which the file is compacted: max(1 MiB, 4 x the live set).
  std::uint64_t compact_bound() const;
  // The file rewritten from memory (with the stop's X line while stopping); true on success.
  bool compact();
  // `body` (its P line first) written over the file itself, framed by a W line, without freeing
  // a block first; then cut to its length and sealed: "" or why not. Sets size_ (to what the file
  // holds).
  // `touched`: whether a byte of the file was written over (else it is as it was).
  std::string rewrite_in_place(const std::string& body, bool& touched);

  std::string path_;
  UniqueFd lock_fd_;
  UniqueFd fd_;  // O_APPEND; invalid until start_writing()
  std::uint64_t size_ = 0;
  std::uint64_t live_bytes_ = 0;
  bool stopping_ = false;  // stopping() was called: no compaction from then on
  // A write failed (disk full): the file misses lines, and its last one may be cut. Nothing is
  // appended to it (a line glued to the cut one is lost, and the missing ends would be sent again
  // by the next start: try15l); it is rewritten from memory once writing works again.
  bool stale_ = false;
  UniqueFd stale_event_;  // written when stale_ becomes true
  void mark_stale();
  std::uint64_t unwritten_batches_ = 0;  // since the file went stale
  std::chrono::steady_clock::time_point last_repair_{}, last_link_check_{};
  // Live report -> its start line, by plugin, rank and the arbiter's key of the connection.
  std::unordered_map<std::string, std::string> live_;
  // Reports whose end the backends have still to send (Ends::kDefer) -> their start and end lines:
  // kept by a rewrite, ended in the file at Ends::kSent.
  std::unordered_map<std::string, std::pair<std::string, std::string>> ending_;
  std::string batch_;          // reused
  bool sent_pending_ = false;  // note_sent() filled batch_ for write_sent()
  // The R lines of the connections to start again, by plugin (keep_restarts), and how many.
  std::unordered_map<std::string, std::string> restarts_;
  std::size_t restart_count_ = 0;
  enum class Outcome : std::uint8_t { kFollowed, kEnded, kRestarted };
  friend std::string_view to_string(Outcome o) {
    return o == Outcome::kFollowed ? "followed" : o == Outcome::kEnded ? "ended" : "restarted";
  }
  ReasonCounters<Outcome, 3> recovered_;
  ReasonCounters<JournalSkip, kJournalSkips> skipped_;
  ReasonCounters<JournalFailure, kJournalFailures> failures_;
  prometheus::Gauge& bytes_;
  LogLimiter write_limiter_{1, std::chrono::seconds(60)};
  LogLimiter rewrite_limiter_{1, std::chrono::seconds(60)};  // a complete file not rewritten
  LogLimiter shrunk_limiter_{1, std::chrono::seconds(60)};   // nor beside it: shrunk in place
  LogLimiter full_limiter_{1, std::chrono::seconds(60)};
  LogLimiter repaired_limiter_{1, std::chrono::seconds(60)};
  bool said_complete_ = false;  // "complete again" was the last word logged
};

}  // namespace flowd
