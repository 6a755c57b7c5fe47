// SPDX-License-Identifier: Apache-2.0
#include "core/flow_journal.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>

#include "common/owned_file.hpp"
#include "core/local_flow_arbiter.hpp"

namespace flowd {
namespace {

// The journal is compacted past max(this, 4 x the live set).
constexpr std::uint64_t kCompactFloor = 1u << 20;
// What is read back at most: 4 x a full arbiter (65536 x 2 reports) of the longest lines.
constexpr std::size_t kMaxRead = 256u << 20;
// Live reports kept at most: the arbiter's two ranks of its 65,536 connections.
constexpr std::size_t kMaxLive = 2 * LocalFlowArbiter::kCapacity;
// Bad lines named in the log at a start; the rest are counted only.
constexpr std::uint64_t kLoggedBadLines = 5;
// The files' mode, and the bit the lock file carries while the journal is behind
// (JournalReplay::behind).
constexpr mode_t kFileMode = 0600;
constexpr mode_t kBehindMode = S_IXUSR;

bool plugin_name_ok(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

template <typename T>
bool number(std::string_view s, T& v, T max) {
  if (s.empty() || s.size() > 20 || s.front() < '0' || s.front() > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc{} && p == s.data() + s.size() && v <= max;
}

std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> f;
  std::size_t pos = 0;
  // One more than the longest line's fields: a field beyond them makes the line malformed.
  while (f.size() < 13) {
    const auto sp = line.find(' ', pos);
    f.push_back(line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos));
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  return f;
}

std::string addresses(const FlowID& f) {
  return fmt::format("{} {} {} {} {}", to_string(f.protocol), f.src.to_string(), f.src_port,
                     f.dst.to_string(), f.dst_port);
}

}  // namespace

std::string_view to_string(JournalSkip s) {
  return s == JournalSkip::kTruncated ? "truncated" : "malformed";
}

std::string_view to_string(JournalFailure f) {
  return f == JournalFailure::kWriteFailed     ? "write_failed"
         : f == JournalFailure::kRewriteFailed ? "rewrite_failed"
         : f == JournalFailure::kFull          ? "full"
                                               : "unwritable";
}

// 2000-01-01T00:00:00Z in microseconds since the epoch.
constexpr std::int64_t kEarliestStartUs = 946684800LL * 1000000;

bool parse_journal_line(std::string_view line, JournalLine& out) {
  if (line.size() > kMaxJournalLine) return false;
  const auto f = fields_of(line);
  if (f.empty() || f[0].size() != 1) return false;
  if (f[0] == "P" || f[0] == "X") {
    out.kind = f[0] == "P" ? JournalLine::Kind::kPid : JournalLine::Kind::kStop;
    long pid = 0;
    if (f.size() != 2 || !number(f[1], pid, 4194304L) || pid <= 0) return false;
    out.pid = pid;
    return true;
  }
  const bool restart = f[0] == "R";  // a start line's fields
  const bool start = f[0] == "S" || restart;
  if (!start && f[0] != "E") return false;
  // A start's cookie is optional (the journals of flowds before it have none).
  if (start ? f.size() != 11u && f.size() != 12u : f.size() != 8u) return false;
  if (!plugin_name_ok(f[1]) || (f[2] != "i" && f[2] != "e")) return false;
  FlowID flow;
  flow.origin = FlowOrigin::kLocal;
  flow.state = start ? FlowState::kStart : FlowState::kEnd;
  if (f[3] == "tcp")
    flow.protocol = Protocol::kTcp;
  else if (f[3] == "udp")
    flow.protocol = Protocol::kUdp;
  else
    return false;
  auto src = IpAddress::parse(f[4]);
  auto dst = IpAddress::parse(f[6]);
  if (!src || !dst || !number<std::uint16_t>(f[5], flow.src_port, 65535) ||
      !number<std::uint16_t>(f[7], flow.dst_port, 65535))
    return false;
  // What no plugin reports, so what no flowd wrote: one family, and no unspecified address
  // (0.0.0.0, ::, ::ffff:0.0.0.0), whose `end` firefly "to the peer" the kernel would deliver to
  // this host (try15h D7). The pipe's and the api's checks (common/flow_fields) refuse the same, by
  // the same test (try15i C), so that no flow they take is one the journal drops here.
  if (src->family != dst->family || src->is_unspecified() || dst->is_unspecified()) return false;
  flow.src = *src;
  flow.dst = *dst;
  if (start) {
    if (!number<std::uint16_t>(f[8], flow.experiment, kMaxExperiment) ||
        !number<std::uint16_t>(f[9], flow.activity, kMaxActivity))
      return false;
    if (f[10] != "-") {
      std::int64_t us = 0;
      if (!number<std::int64_t>(f[10], us, std::int64_t{1} << 53)) return false;
      flow.start_time = TimePoint(std::chrono::microseconds(us));
      // A start before 2000 or more than a day ahead of this host's clock is no flowd's (the end
      // would carry it to the collectors): a line edited by hand, or a clock far off.
      if (us < kEarliestStartUs || *flow.start_time > Clock::now() + std::chrono::hours(24))
        return false;
    }
    if (f.size() == 12) {
      constexpr std::string_view kCookie = "cookie=";
      if (!f[11].starts_with(kCookie) ||
          !number<std::uint64_t>(f[11].substr(kCookie.size()), flow.socket_cookie,
                                 std::numeric_limits<std::uint64_t>::max()) ||
          flow.socket_cookie == 0)
        return false;
    }
  }
  out.kind = restart ? JournalLine::Kind::kRestart
             : start ? JournalLine::Kind::kStart
                     : JournalLine::Kind::kEnd;
  out.plugin = std::string(f[1]);
  out.explicit_rank = f[2] == "e";
  out.flow = std::move(flow);
  return true;
}

std::string journal_start_line(const FlowID& f, std::string_view plugin, bool explicit_rank) {
  const std::string start =
      f.start_time ? std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                        f.start_time->time_since_epoch())
                                        .count())
                   : std::string("-");
  const std::string cookie =
      f.socket_cookie ? fmt::format(" cookie={}", f.socket_cookie) : std::string();
  return fmt::format("S {} {} {} {} {} {}{}\n", plugin, explicit_rank ? 'e' : 'i', addresses(f),
                     f.experiment, f.activity, start, cookie);
}

std::string journal_restart_line(const FlowID& f, std::string_view plugin) {
  std::string line = journal_start_line(f, plugin, false);
  line[0] = 'R';
  return line;
}

std::string journal_end_line(const FlowID& f, std::string_view plugin, bool explicit_rank) {
  return fmt::format("E {} {} {}\n", plugin, explicit_rank ? 'e' : 'i', addresses(f));
}

namespace {

std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The extent an in-place rewrite's W line (the second line, after the P line) gives: [from, to) of
// `body`, the lines to read; `from` past the W line. Unframed (no W or w line): the whole body.
struct Extent {
  std::size_t from = 0, to = 0;
  std::uint64_t first_line = 1;  // the number of the line at `from`, for the log
};
Extent in_place_extent(std::string_view body, const std::string& path, JournalReplay& r) {
  Extent all{0, body.size(), 1};
  const auto p_end = body.find('\n');
  if (p_end == std::string_view::npos || !body.starts_with("P ")) return all;
  const auto w_end = body.find('\n', p_end + 1);
  if (w_end == std::string_view::npos || w_end - p_end < 3) return all;
  const auto w = body.substr(p_end + 1, w_end - p_end - 1);
  if (w[0] != 'W' && w[0] != 'w') return all;
  const auto f = fields_of(w);
  std::uint64_t bytes = 0, hash = 0;
  if (f.size() != 3 || f[0].size() != 1 || !number(f[1], bytes, std::uint64_t{kMaxRead}) ||
      f[2].size() != 16 ||
      std::from_chars(f[2].data(), f[2].data() + 16, hash, 16).ptr != f[2].data() + 16)
    return all;  // not a frame: read (and counted) as a malformed line
  // The P line, then after the W line.
  Extent e{w_end + 1, body.size(), 3};
  if (w[0] == 'w') return e;  // sealed: cut to its length, appended to since
  const auto content = body.substr(e.from);
  if (bytes <= content.size() && fnv1a64(content.substr(0, bytes)) == hash) {
    e.to = e.from + bytes;
    r.old_rest_bytes = content.size() - bytes;
    if (r.old_rest_bytes)
      get_logger("core")->info(
          "flow journal {}: rewritten in place when flowd was killed, before it was cut to its "
          "length: the {} bytes of the old content after it are not read",
          path, r.old_rest_bytes);
    return e;
  }
  r.rewrite_cut = true;
  get_logger("core")->warn(
      "flow journal {}: its rewrite in place did not finish (flowd killed during it, or a write "
      "the full work_dir refused, then a kill): read as it is, "
      "the rewrite's start then the old content (some ends may be sent twice, some flows not "
      "ended)",
      path);
  return e;
}

}  // namespace

std::string journal_in_place_line(std::string_view content) {
  return fmt::format("W {} {:016x}\n", content.size(), fnv1a64(content));
}

std::string FlowJournal::key_of(std::string_view plugin, bool explicit_rank, const FlowID& f) {
  const FlowKey k = LocalFlowArbiter::key_of(f);
  return fmt::format("{} {} {} {} {} {}", plugin, explicit_rank ? 'e' : 'i', to_string(k.protocol),
                     k.dst.to_string(), k.src_port, k.dst_port);
}

const char* FlowJournal::static_name(std::string_view plugin) {
  static std::mutex mu;
  static std::set<std::string, std::less<>> names;
  std::lock_guard lock(mu);
  if (auto it = names.find(plugin); it != names.end()) return it->c_str();
  if (names.size() >= 64) return "journal";
  return names.emplace(plugin).first->c_str();
}

JournalReplay replay_journal(std::string_view body, const std::string& path) {
  JournalReplay r;
  // By key: the index in `order` of the live start.
  std::unordered_map<std::string, std::size_t> live;
  std::vector<std::optional<JournalReport>> order;
  // After an X line: the inferred reports its ends ended, by key.
  bool stopping = false;
  std::map<std::string, JournalReport> stopped;
  auto log = get_logger("core");
  // The P line, then (an in-place rewrite's frame) the lines after its W line.
  const Extent extent = in_place_extent(body, path, r);
  if (extent.from > 0) {
    JournalLine p;
    if (parse_journal_line(body.substr(0, body.find('\n')), p)) r.pid = p.pid;
    body = body.substr(0, extent.to);
  }
  std::uint64_t line_no = extent.first_line - 1;
  std::size_t pos = extent.from;
  JournalLine l;
  while (pos < body.size()) {
    ++line_no;
    const auto nl = body.find('\n', pos);
    if (nl == std::string_view::npos) {
      // The last write cut short by the kill.
      ++r.truncated;
      if (r.truncated + r.malformed <= kLoggedBadLines)
        log->warn("flow journal {} line {}: cut short (no newline), skipped", path, line_no);
      break;
    }
    const auto line = body.substr(pos, nl - pos);
    pos = nl + 1;
    if (!parse_journal_line(line, l)) {
      ++r.malformed;
      if (r.truncated + r.malformed <= kLoggedBadLines)
        log->warn("flow journal {} line {}: not a journal line, skipped", path, line_no);
      continue;
    }
    if (l.kind == JournalLine::Kind::kPid) {
      r.pid = l.pid;
      stopping = false;  // a later run: what an earlier stop ended was dealt with then
      stopped.clear();
      continue;
    }
    if (l.kind == JournalLine::Kind::kStop) {
      stopping = true;
      continue;
    }
    const std::string key = FlowJournal::key_of(l.plugin, l.explicit_rank, l.flow);
    if (l.kind == JournalLine::Kind::kRestart) {
      // A connection a rewrite kept to start again: as if a stop had just ended it (a later start
      // line of it, its plugin's restart, takes it out below).
      stopped[key] = JournalReport{l.plugin, false, l.flow};
      continue;
    }
    auto it = live.find(key);
    if (l.kind == JournalLine::Kind::kEnd) {
      if (it != live.end()) {
        if (stopping && !l.explicit_rank) stopped[key] = std::move(*order[it->second]);
        order[it->second].reset();
        live.erase(it);
      }
      continue;
    }
    stopped.erase(key);
    if (it != live.end()) order[it->second].reset();  // a repeated start: the newest counts
    live[key] = order.size();
    order.push_back(JournalReport{l.plugin, l.explicit_rank, l.flow});
  }
  const auto bad = r.truncated + r.malformed;
  if (bad > kLoggedBadLines)
    log->warn("flow journal {}: {} bad lines skipped in all ({} not named above)", path, bad,
              bad - kLoggedBadLines);
  for (auto& o : order)
    if (o) r.live.push_back(std::move(*o));
  for (auto& [key, report] : stopped) r.stopped.push_back(std::move(report));
  r.stopped_cleanly = stopping;
  return r;
}

FlowJournal::FlowJournal(prometheus::Registry& metrics)
    : stale_event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      recovered_(
          metrics, "flowd_flow_journal_recovered_total",
          "Live local flow reports a previous flowd left in the flow journal, by what a "
          "start made of them: followed (restored, its plugin follows it on), ended (its "
          "connection closed while no flowd ran, its 4-tuple maybe reused by a new one, or "
          "its plugin is gone: ended at the start), restarted (a connection plugin's report "
          "the previous flowd's stop ended, or that a tool's report ended meanwhile hid, its "
          "connection still open: handed to its plugin to start again as its configuration "
          "says)",
          "outcome"),
      skipped_(metrics, "flowd_flow_journal_lines_skipped_total",
               "Flow journal lines skipped when read back at a start, by reason: truncated (the "
               "last line, cut short by a kill), malformed"),
      failures_(metrics, "flowd_flow_journal_failures_total",
                "What the flow journal could not keep, by reason: write_failed (an append failed, "
                "disk full or I/O error: the file is rewritten from memory once writing works "
                "again), rewrite_failed (such a rewrite failed), full (a start not kept: the "
                "journal held its most live reports, 131072), unwritable (flowd started without "
                "a journal: work_dir read-only or not writable)",
                "reason"),
      bytes_(prometheus::BuildGauge()
                 .Name("flowd_flow_journal_bytes")
                 .Help("Size of the flow journal in work_dir (0: none kept)")
                 .Register(metrics)
                 .Add({})) {}

FlowJournal::~FlowJournal() {
  // The last chance to leave a complete file: a stale one would send ends again at the next start.
  if (stale_ && active() && !compact())
    get_logger("core")->warn(
        "flow journal {}: could not be brought up to date before flowd exits (see above): the "
        "next start reads an outdated journal: ends it sends again, starts it cannot end",
        path_);
}

namespace {

// Whether `pid` is a live process named flowd (its comm, as the kernel keeps it), as the P line's
// writer would be: /proc/PID/stat is "PID (COMM) STATE …"; a zombie (Z), killed and not yet
// reaped, or a dead one (X) runs no more.
bool is_running_flowd(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) return false;
  const auto open = stat.find(" ("), close = stat.rfind(") ");
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  const char state = close + 2 < stat.size() ? stat[close + 2] : 'X';
  return stat.substr(open + 2, close - open - 2) == "flowd" && state != 'Z' && state != 'X';
}

}  // namespace

std::string FlowJournal::path_for(const std::string& work_dir) {
  if (work_dir.empty()) return {};
  struct stat ns {};
  if (::stat("/proc/self/ns/net", &ns) != 0) return work_dir + "/flows.journal";
  return work_dir + "/flows." + std::to_string(ns.st_ino) + ".journal";
}

bool FlowJournal::open(const std::string& work_dir, JournalReplay& previous) {
  auto log = get_logger("core");
  const std::string path = path_for(work_dir);
  if (path.empty()) {
    log->info(
        "work_dir is empty: no flow journal is kept (a restart after kill -9 cannot end "
        "the flows the previous flowd reported)");
    return false;
  }
  create_private_directories(work_dir);
  const std::string lock_path = path + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock) {
    const int err = errno;
    failures_.add(JournalFailure::kUnwritable);
    // The journal may still be read (a work_dir remounted read-only): say what it holds. Its flows
    // are left to the first start that can write it, not ended now: this start could not record
    // their ends, and that one would send them again (try16a 2: before, only the error was said).
    std::string held;
    std::string error;
    if (auto body = read_owned_regular_file(path, kMaxRead, error))
      if (const auto left = replay_journal(*body, path).live.size())
        held = fmt::format(
            "; the journal holds {} flow{} the previous flowd did not end: not ended by this "
            "start (it could not record their ends, which a later start would send again), but "
            "by the first start that can write {}",
            left, left == 1 ? "" : "s", work_dir);
    log->warn("no flow journal: {}: {}{} (and a restart after kill -9 cannot end this run's flows)",
              lock_path, std::strerror(err), held);
    return false;
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    log->warn(
        "no flow journal: another flowd in this network namespace uses work_dir {} ({} is "
        "locked); this one keeps none, so a restart after kill -9 cannot end its flows",
        work_dir, lock_path);
    return false;
  }
  // One larger than flowd reads (no flowd writes one: at most 131072 live reports, rewritten past
  // 4 times their size) is moved aside, so that this start and the next keep a journal again
  // (before, flowd ran without one at every start until someone removed it: try15l).
  if (struct stat st{}; ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                        st.st_uid == ::geteuid() &&
                        static_cast<std::uint64_t>(st.st_size) > kMaxRead) {
    const std::string aside = path + ".too-big";
    struct stat there {};
    const bool replacing = ::lstat(aside.c_str(), &there) == 0;
    if (::rename(path.c_str(), aside.c_str()) == 0)
      log->warn(
          "flow journal {}: {} bytes, more than flowd reads ({}): moved aside to {}{}; the flows "
          "it held are not ended by this start, and a new journal is kept",
          path, st.st_size, kMaxRead, aside, replacing ? " (replacing the one there)" : "");
    else
      log->warn(
          "flow journal {}: {} bytes, more than flowd reads ({}), cannot be moved aside to "
          "{}: {}",
          path, st.st_size, kMaxRead, aside, std::strerror(errno));
  }
  std::string error;
  auto body = read_owned_regular_file(path, kMaxRead, error);
  if (!error.empty()) {
    log->warn("no flow journal: {}: {}", path, error);
    return false;
  }
  previous = body ? replay_journal(*body, path) : JournalReplay{};
  // The lock file removed under a running flowd (a clean-up of empty files): the lock taken here is
  // a new file's, and the journal's writer still runs. Taking its journal over would end or follow
  // its live flows as a dead flowd's, and each would write over the other's (try16c F4).
  if (previous.pid > 0 && previous.pid != ::getpid() && is_running_flowd(previous.pid)) {
    log->warn(
        "no flow journal: {} is written by flowd pid {}, which still runs (its lock file {} was "
        "removed); this one keeps none, so a restart after kill -9 cannot end its flows",
        path, previous.pid, lock_path);
    previous = JournalReplay{};
    return false;
  }
  if (struct stat st{}; ::fstat(lock.get(), &st) == 0 && (st.st_mode & kBehindMode)) {
    previous.behind = true;
    if (body)
      log->warn(
          "flow journal {}: behind what the previous flowd reported when it stopped (a write had "
          "failed: work_dir full, an I/O error): of the flows it ends now, some may have been "
          "ended before, and flows it started since may be missing (never ended)",
          path);
    else
      log->warn(
          "flow journal {}: missing, and the previous flowd could not write it again before it "
          "stopped (removed while it ran, work_dir full or read-only): the flows it reported are "
          "not ended by this start",
          path);
  }
  skipped_.add(JournalSkip::kTruncated, static_cast<double>(previous.truncated));
  skipped_.add(JournalSkip::kMalformed, static_cast<double>(previous.malformed));
  lock_fd_ = std::move(lock);
  path_ = path;
  // A kill -9 during a compaction's rewrite leaves its temporary file behind (try15g 8).
  if (std::size_t n = remove_stale_temporaries(path))
    log->info("removed {} temporary file(s) of the flow journal a killed flowd left", n);
  return true;
}

void FlowJournal::start_writing() {
  if (!active()) return;
  compact();
}

void FlowJournal::keep_restarts(std::span<const FlowID> restarts) {
  if (!active()) return;
  for (const auto& f : restarts) {
    if (!f.plugin || restart_count_ >= kMaxLive) continue;
    restarts_[f.plugin] += journal_restart_line(f, f.plugin);
    ++restart_count_;
  }
}

void FlowJournal::restarts_taken(std::string_view plugin) {
  auto it = restarts_.find(std::string(plugin));
  if (it == restarts_.end()) return;
  restarts_.erase(it);
  // Rewritten without them at once (once per plugin at a start): an R line left in the file would
  // offer the next start a connection this one's configuration left out, as one its stop ended.
  if (fd_ && !stopping_) compact();
}

std::string FlowJournal::rewrite_in_place(const std::string& body, bool& touched) {
  touched = false;
  // No room for a new file beside it (work_dir full, or a directory flowd cannot add to): the file
  // itself is written over, from its start. Not emptied first: that freed its blocks, which another
  // writer on the file system could take before this write, cut short then (try15o: 2,018 lines
  // became 36). The content is no larger than the file's, so it needs no new block; cut to its
  // length afterwards. A kill in between leaves the old content's rest after it, which the W line
  // keeps the next start from reading; the W becomes a w once the file is cut (sealed).
  const auto p_end = body.find('\n') + 1;
  const std::string content = body.substr(p_end);
  std::string framed = body.substr(0, p_end) + journal_in_place_line(content) + content;
  try {
    // The descriptor flowd holds, while its file is still the journal (linked): opening by path
    // again fails where the directory's mount went read-only, though the file is still writable
    // through it (try15n 2b). O_APPEND is cleared for the rewrite (pwrite would append) and set
    // again.
    UniqueFd opened;
    int f = -1, flags = 0;
    struct stat st {};
    if (fd_ && ::fstat(fd_.get(), &st) == 0 && st.st_nlink > 0) {
      // An append-only file (chattr +a) refuses this: it is left as it is (try16a 3).
      if ((flags = ::fcntl(fd_.get(), F_GETFL)) < 0 ||
          ::fcntl(fd_.get(), F_SETFL, flags & ~O_APPEND) != 0)
        return fmt::format("cannot write over it: {}", std::strerror(errno));
      f = fd_.get();
    } else {
      fd_.reset();
      opened = open_owned_regular_file(path_, 0, kFileMode);
      f = opened.get();
      if (::fstat(f, &st) != 0) return std::strerror(errno);
    }
    struct AppendAgain {
      int fd, flags;
      ~AppendAgain() {
        if (fd >= 0) ::fcntl(fd, F_SETFL, flags);
      }
    } append_again{opened ? -1 : f, flags};
    // A file that holds reports is written over only by what fits in its blocks: one cut short
    // would lose them. An empty one (or none: removed while flowd ran) has nothing to lose.
    if (st.st_size > 0 && framed.size() > static_cast<std::uint64_t>(st.st_size))
      return fmt::format("{} bytes, more than the {} it holds", framed.size(), st.st_size);
    auto write_at = [&](const char* data, std::size_t n, off_t at) -> std::string {
      std::size_t done = 0;
      while (done < n) {
        const ssize_t w = ::pwrite(f, data + done, n - done, at + static_cast<off_t>(done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? std::strerror(errno) : "short write";
        done += static_cast<std::size_t>(w);
      }
      return {};
    };
    touched = true;
    if (auto err = write_at(framed.data(), framed.size(), 0); !err.empty()) return err;
    if (::ftruncate(f, static_cast<off_t>(framed.size())) != 0) return std::strerror(errno);
    size_ = framed.size();
    return write_at("w", 1, static_cast<off_t>(p_end));
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::uint64_t FlowJournal::compact_bound() const {
  return std::max(kCompactFloor, 4 * live_bytes_);
}

bool FlowJournal::compact() {
  std::string body = fmt::format("P {}\n", ::getpid());
  // Before the live reports: a restart's start line of the same connection, later, takes the R
  // line out at the replay.
  for (const auto& [plugin, lines] : restarts_) body += lines;
  for (const auto& [key, line] : live_) body += line;
  for (const auto& [key, lines] : ending_) body += lines.first;  // their ends not yet sent
  // A repair while the daemon stops: the ends that follow are the stop's (those written before
  // are not in memory: their connections are not started again, nor ended twice).
  if (stopping_) body += fmt::format("X {}\n", ::getpid());
  bool ok = true;
  if (auto err = replace_file_atomically(path_, body, kFileMode); err.empty()) {
    fd_.reset();  // the replaced file's
    size_ = body.size();
  } else if (!stale_ && fd_ && size_ <= 2 * compact_bound()) {
    // A rewrite to shrink a complete file failed (no room for a new file, a read-only directory):
    // it is appended to as it is (try15n: a read-only work_dir stopped the appends that worked),
    // up to twice the bound; past that it is shrunk in place (below), which a kill in the middle
    // could leave mixed, but which keeps it readable (a file past 256 MiB is not read).
    failures_.add(JournalFailure::kRewriteFailed);
    last_repair_ = std::chrono::steady_clock::now();  // the next try a second on at the earliest
    limited_warn(*get_logger("core"), rewrite_limiter_,
                 "flow journal: cannot rewrite {}; appended to as it is", err);
    return false;
  } else {
    // Behind (or not written yet, or too large): written over in place when the new content fits in
    // what the file holds; else left as it is for a later try, since an in-place write cut short
    // would lose reports the file holds (try15n).
    const bool complete = !stale_ && fd_;
    bool touched = false;
    if (const auto in_place = rewrite_in_place(body, touched);
        !in_place.empty() && complete && !touched && fd_) {
      // A complete file nothing was written over: still appended to, as above.
      failures_.add(JournalFailure::kRewriteFailed);
      last_repair_ = std::chrono::steady_clock::now();
      limited_warn(*get_logger("core"), rewrite_limiter_,
                   "flow journal: cannot rewrite {} (nor in place: {}); appended to as it is", err,
                   in_place);
      return false;
    } else if (!in_place.empty()) {
      failures_.add(JournalFailure::kRewriteFailed);
      limited_warn(*get_logger("core"), write_limiter_,
                   "flow journal: cannot rewrite {} (nor in place: {})", err, in_place);
      ok = false;
    } else if (complete) {
      failures_.add(JournalFailure::kRewriteFailed);
      limited_warn(*get_logger("core"), shrunk_limiter_,
                   "flow journal: cannot rewrite {}; appended to past twice its bound, it was "
                   "shrunk in place",
                   err);
    }
  }
  if (!fd_) try {
      fd_ = open_owned_regular_file(path_, O_APPEND, kFileMode);
    } catch (const std::exception& e) {
      limited_warn(*get_logger("core"), write_limiter_, "flow journal: {}", e.what());
      ok = false;
    }
  // What the file holds, not what it should (none: 0).
  if (struct stat st{}; !ok) size_ = fd_ && ::fstat(fd_.get(), &st) == 0 ? st.st_size : 0;
  if (ok) ::fchmod(lock_fd_.get(), kFileMode);  // complete: not behind (mark_stale)
  if (!ok) {
    mark_stale();
  } else if (stale_) {
    stale_ = false;
    // Once said, the next failure is said too (not held back by its limiter): the log's last
    // word on the journal must not be "complete again" while it is behind (try16a 4).
    if (std::uint64_t held = 0; repaired_limiter_.allow(held)) {
      get_logger("core")->info(
          "flow journal {}: rewritten from memory{}: complete again{}", path_,
          unwritten_batches_ ? fmt::format(" after {} batch{} it could not write",
                                           unwritten_batches_, unwritten_batches_ == 1 ? "" : "es")
                             : std::string(),
          held ? fmt::format(" ({} more not logged)", held) : std::string());
      said_complete_ = true;
    }
    unwritten_batches_ = 0;
  }
  bytes_.Set(static_cast<double>(size_));
  return ok;
}

void FlowJournal::record(std::span<const FlowID> flows, std::string_view plugin, bool explicit_rank,
                         Ends ends) {
  if (!active()) return;
  batch_.clear();
  for (const auto& f : flows) note(f, plugin, explicit_rank, ends);
  write_batch();
}

void FlowJournal::note_sent(std::span<const FlowID> ends, std::string_view plugin,
                            bool explicit_rank) {
  if (!active()) return;
  if (!sent_pending_) batch_.clear();
  sent_pending_ = true;
  for (const auto& f : ends) note(f, plugin, explicit_rank, Ends::kSent);
}

void FlowJournal::write_sent() {
  if (!sent_pending_) return;
  sent_pending_ = false;
  write_batch();
}

void FlowJournal::record_recovered(std::span<const FlowID> ends,
                                   std::span<const std::uint8_t> explicit_rank, bool sent) {
  if (!active()) return;
  batch_.clear();
  for (std::size_t i = 0; i < ends.size() && i < explicit_rank.size(); ++i) {
    if (sent) {
      note(ends[i], ends[i].plugin, explicit_rank[i] != 0);
      continue;
    }
    FlowID start = ends[i];  // its start line as the previous flowd wrote it
    start.state = FlowState::kStart;
    start.end_time.reset();
    note(start, ends[i].plugin, explicit_rank[i] != 0);
  }
  write_batch();
}

void FlowJournal::note(const FlowID& f, std::string_view plugin, bool explicit_rank, Ends ends) {
  if (f.origin != FlowOrigin::kLocal || f.state == FlowState::kOngoing) return;
  std::string key = key_of(plugin, explicit_rank, f);
  if (f.state == FlowState::kStart) {
    // The end before it, still on its way, is written first: after this start, it would end this
    // one at the replay.
    if (auto e = ending_.find(key); e != ending_.end()) {
      batch_ += e->second.second;
      ending_.erase(e);
    }
    // Bounded as the arbiter is (two reports per connection): a tool that starts flows without
    // ever ending them cannot grow it without end. Those beyond are not kept across a kill.
    if (live_.size() >= kMaxLive && !live_.contains(key)) {
      failures_.add(JournalFailure::kFull);
      limited_warn(*get_logger("core"), full_limiter_,
                   "flow journal: {} live reports, its most; a start of {} is not kept (a "
                   "restart after kill -9 cannot end it)",
                   kMaxLive, plugin);
      return;
    }
    std::string line = journal_start_line(f, plugin, explicit_rank);
    batch_ += line;
    auto [it, inserted] = live_.try_emplace(std::move(key), std::string());
    live_bytes_ += line.size();
    live_bytes_ -= it->second.size();
    it->second = std::move(line);
    return;
  }
  if (ends == Ends::kSent) {
    if (auto e = ending_.find(key); e != ending_.end()) {
      batch_ += e->second.second;
      ending_.erase(e);
    }
    return;
  }
  auto it = live_.find(key);
  if (it == live_.end()) return;
  live_bytes_ -= it->second.size();
  if (ends == Ends::kDefer)
    ending_[key] = {std::move(it->second), journal_end_line(f, plugin, explicit_rank)};
  else
    batch_ += journal_end_line(f, plugin, explicit_rank);
  live_.erase(it);
}

void FlowJournal::write_batch() {
  if (batch_.empty()) return;
  if (stale_) {
    // Memory holds what the file should: rewritten from it, at most once a second (a full disk
    // refuses every write; a flood must not rewrite the whole journal at each batch).
    ++unwritten_batches_;
    repair_if_due();
    return;
  }
  if (!fd_ || !append(batch_)) return;
  // Removed while flowd runs (rm, a clean-up script): the writes went to a file nobody reads, and a
  // start after a kill found no journal. Looked at once a second at most.
  if (const auto now = std::chrono::steady_clock::now();
      now - last_link_check_ >= std::chrono::seconds(1)) {
    last_link_check_ = now;
    if (struct stat st{}; ::fstat(fd_.get(), &st) == 0 && st.st_nlink == 0) {
      // The removed file is let go of: a compaction that cannot write a new one (a directory that
      // takes no new file) leaves the journal behind, marked so, and tried again each second,
      // instead of appending to a file no start reads (try16c F1).
      fd_.reset();
      // Said each time (a removal is looked for once a second at most, and not again until the
      // file is back): the failure compact() logs uses the write limiter, which would hold this
      // back (try17a F3).
      if (compact())
        get_logger("core")->warn("flow journal {} was removed while flowd runs: written again",
                                 path_);
      else
        get_logger("core")->warn(
            "flow journal {} was removed while flowd runs and cannot be written again (see "
            "above): behind until it can, tried again each second",
            path_);
      return;
    }
  }
  // Not while the daemon stops: the X line and the stop's ends after it must stay (they are at
  // most one line per live report).
  // A rewrite that failed (no room, a read-only directory) is tried again a second on at the
  // earliest, not at each batch.
  if (!stopping_ && size_ > compact_bound() &&
      std::chrono::steady_clock::now() - last_repair_ >= std::chrono::seconds(1))
    compact();
}

bool FlowJournal::append(const std::string& text) {
  // One write(2): the lines of a batch reach the page cache together, or (a kill in the middle of
  // a short write) the last one is cut, which the reader skips.
  const ssize_t n = ::write(fd_.get(), text.data(), text.size());
  if (n >= 0 && static_cast<std::size_t>(n) == text.size()) {
    size_ += text.size();
    bytes_.Set(static_cast<double>(size_));
    return true;
  }
  const int err = errno;
  if (n > 0) size_ += static_cast<std::size_t>(n);
  failures_.add(JournalFailure::kWriteFailed);
  ++unwritten_batches_;
  constexpr auto kWriteFailed =
      "flow journal: writing {}: {}; nothing more is appended, it is rewritten from memory once "
      "writing works again (a kill -9 meanwhile leaves the next start an outdated journal: ends "
      "sent again, starts without their end; flowd_flow_journal_failures_total)";
  const char* why = n < 0 ? std::strerror(err) : "short write";
  if (std::exchange(said_complete_, false))
    get_logger("core")->warn(kWriteFailed, path_, why);
  else
    limited_warn(*get_logger("core"), write_limiter_, kWriteFailed, path_, why);
  mark_stale();
  // At once (the cut line must not stay the file's last), unless a rewrite was tried less than a
  // second ago: on a full disk with flows coming, every batch failed and rewrote the whole file
  // (try15n: "complete again" 30 times a second).
  repair_if_due();
  bytes_.Set(static_cast<double>(size_));
  return false;
}

void FlowJournal::count_recovered(std::uint64_t followed, std::uint64_t ended,
                                  std::uint64_t restarted) {
  recovered_.add(Outcome::kFollowed, static_cast<double>(followed));
  recovered_.add(Outcome::kEnded, static_cast<double>(ended));
  recovered_.add(Outcome::kRestarted, static_cast<double>(restarted));
}

void FlowJournal::mark_stale() {
  if (std::exchange(stale_, true)) return;
  // Said to the next start, should flowd be killed before the file is complete again: on the lock
  // file, which stays when the journal itself is gone.
  ::fchmod(lock_fd_.get(), kFileMode | kBehindMode);
  // Wakes the daemon's main loop, which tries again each second while flowd is idle.
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stale_event_.get(), &one, sizeof one);
}

void FlowJournal::repair_if_due() {
  if (!stale_ || !active()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_repair_ < std::chrono::seconds(1)) return;
  last_repair_ = now;
  compact();
}

void FlowJournal::stopping() {
  if (!active() || stopping_) return;
  stopping_ = true;
  if (stale_)
    compact();  // with the X line
  else if (fd_)
    append(fmt::format("X {}\n", ::getpid()));
}

}  // namespace flowd
