// SPDX-License-Identifier: Apache-2.0
// The flow journal (issue 15 E3): its strict line parser, the replay of what a killed flowd left,
// the bound on its size (compaction), its lock, and the bus's restore of the reports it kept.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <prometheus/registry.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "core/bus.hpp"
#include "core/flow_journal.hpp"
#include "registry_metrics.hpp"

namespace flowd {
namespace {

FlowID flow(std::uint16_t src_port, FlowState state = FlowState::kStart,
            Protocol p = Protocol::kTcp) {
  FlowID f;
  f.origin = FlowOrigin::kLocal;
  f.state = state;
  f.protocol = p;
  f.src = *IpAddress::parse("198.18.0.1");
  f.dst = *IpAddress::parse("198.18.0.2");
  f.src_port = src_port;
  f.dst_port = 5201;
  f.experiment = 2;
  f.activity = 9;
  f.start_time = TimePoint(std::chrono::microseconds(1764000000123456));
  return f;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/flowd-journal-test.XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

TEST(FlowJournalLine, AStartAndAnEndRoundTrip) {
  FlowID f = flow(40000);
  f.src = *IpAddress::parse("fd00::1");
  f.dst = *IpAddress::parse("fd00::2");
  std::string line = journal_start_line(f, "kernel", false);
  EXPECT_EQ(line, "S kernel i tcp fd00::1 40000 fd00::2 5201 2 9 1764000000123456\n");
  line.pop_back();
  JournalLine l;
  ASSERT_TRUE(parse_journal_line(line, l));
  EXPECT_EQ(l.kind, JournalLine::Kind::kStart);
  EXPECT_EQ(l.plugin, "kernel");
  EXPECT_FALSE(l.explicit_rank);
  EXPECT_EQ(l.flow.src, f.src);
  EXPECT_EQ(l.flow.dst_port, 5201);
  EXPECT_EQ(l.flow.start_time, f.start_time);
  EXPECT_EQ(l.flow.origin, FlowOrigin::kLocal);
  std::string end = journal_end_line(flow(1, FlowState::kEnd, Protocol::kUdp), "np_api", true);
  EXPECT_EQ(end, "E np_api e udp 198.18.0.1 1 198.18.0.2 5201\n");
  end.pop_back();
  ASSERT_TRUE(parse_journal_line(end, l));
  EXPECT_EQ(l.kind, JournalLine::Kind::kEnd);
  EXPECT_TRUE(l.explicit_rank);
  EXPECT_EQ(l.flow.protocol, Protocol::kUdp);
  ASSERT_TRUE(parse_journal_line("P 42", l));
  EXPECT_EQ(l.pid, 42);
  FlowID no_start = flow(2);
  no_start.start_time.reset();
  line = journal_start_line(no_start, "netlink", false);
  line.pop_back();
  ASSERT_TRUE(parse_journal_line(line, l));
  EXPECT_FALSE(l.flow.start_time);
}

// try15g 3: the connection plugins' starts carry the kernel's socket cookie, as an optional last
// field, so that a restart tells a 4-tuple reused while no flowd ran from the connection journaled.
// A journal of a flowd before it (no cookie) still parses: the cookie is then unknown (0).
TEST(FlowJournalLine, AStartCarriesTheSocketCookieWhenKnown) {
  FlowID f = flow(40000);
  f.socket_cookie = 18446744073709551615u;  // the largest
  std::string line = journal_start_line(f, "kernel", false);
  EXPECT_EQ(line,
            "S kernel i tcp 198.18.0.1 40000 198.18.0.2 5201 2 9 1764000000123456 "
            "cookie=18446744073709551615\n");
  line.pop_back();
  JournalLine l;
  ASSERT_TRUE(parse_journal_line(line, l));
  EXPECT_EQ(l.flow.socket_cookie, f.socket_cookie);
  EXPECT_EQ(l.flow.start_time, f.start_time);
  f.socket_cookie = 4097;
  f.start_time.reset();
  line = journal_start_line(f, "netlink", false);
  EXPECT_EQ(line, "S netlink i tcp 198.18.0.1 40000 198.18.0.2 5201 2 9 - cookie=4097\n");
  line.pop_back();
  ASSERT_TRUE(parse_journal_line(line, l));
  EXPECT_EQ(l.flow.socket_cookie, 4097u);
  EXPECT_FALSE(l.flow.start_time);
  // Without one (unknown, or an older flowd's line): none written, none read.
  f.socket_cookie = 0;
  line = journal_start_line(f, "np_api", true);
  EXPECT_EQ(line, "S np_api e tcp 198.18.0.1 40000 198.18.0.2 5201 2 9 -\n");
  ASSERT_TRUE(
      parse_journal_line("S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000", l));
  EXPECT_EQ(l.flow.socket_cookie, 0u);
  // An end has none: the start's key ends it.
  EXPECT_EQ(journal_end_line(flow(1, FlowState::kEnd), "kernel", false),
            "E kernel i tcp 198.18.0.1 1 198.18.0.2 5201\n");
  // Replayed: the live report keeps its cookie (the recovery compares it with the open socket's).
  std::string body = "P 7\n";
  FlowID a = flow(1), b = flow(2);
  a.socket_cookie = 77;
  body += journal_start_line(a, "kernel", false);
  body += journal_start_line(b, "kernel", false);
  const auto r = replay_journal(body, "j");
  ASSERT_EQ(r.live.size(), 2u);
  EXPECT_EQ(r.live[0].start.socket_cookie, 77u);
  EXPECT_EQ(r.live[1].start.socket_cookie, 0u);
  EXPECT_EQ(r.malformed, 0u);
}

TEST(FlowJournalLine, AnythingElseIsRefused) {
  JournalLine l;
  for (const char* bad : {
           "", "P", "P 0", "P -1", "P 12 13", "X kernel i tcp 198.18.0.1 1 198.18.0.2 2",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9",                     // a field missing
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 1",  // one too many
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 cookie=1 1",  // one past
                                                                                        // the
                                                                                        // cookie
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 cookie=0",    // never 0
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 cookie=",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 cookie=-1",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 "
           "cookie=18446744073709551616",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 cookie=0x10",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 Cookie=1",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000 cookie=1 ",  // a trailing
                                                                                       // space
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 cookie=1",            // no start time
           "E kernel i tcp 198.18.0.1 1 198.18.0.2 2 cookie=1",                // an end has none
           "S Kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000",    // not a plugin name
           "S kernel x tcp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000",    // no rank
           "S kernel i sctp 198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000",   // no protocol
           "S kernel i tcp 198.18.0.300 1 198.18.0.2 2 2 9 1764000000000000",  // no address
           "S kernel i tcp 198.18.0.1 65536 198.18.0.2 2 2 9 1764000000000000",  // port
           "S kernel i tcp 198.18.0.1 +1 198.18.0.2 2 2 9 1764000000000000",     // sign
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 512 9 1764000000000000",    // experiment
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 64 1764000000000000",     // activity
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 1x",                    // time
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 99999999999999999999",
           "S kernel i tcp  198.18.0.1 1 198.18.0.2 2 2 9 1764000000000000",  // two spaces
           // What no flowd writes (try15h D7): two families, an unspecified address, a start
           // before 2000 or far ahead of the clock.
           "S kernel i tcp 198.18.0.1 1 fd00::2 2 2 9 1764000000000000",
           "S kernel i tcp 198.18.0.1 1 0.0.0.0 2 2 9 1764000000000000",
           "S kernel i tcp :: 1 fd00::2 2 2 9 1764000000000000",
           "E kernel i tcp 0.0.0.0 1 198.18.0.2 2",
           // try15i C: 0.0.0.0 mapped into IPv6 is unspecified too (it was followed on as a
           // live flow).
           "S np_api e tcp ::ffff:0.0.0.0 1 fd00::2 2 2 9 1764000000000000",
           "S np_api e tcp fd00::1 1 ::ffff:0.0.0.0 2 2 9 1764000000000000",
           "E np_api e udp ::ffff:0:0 1 fd00::2 2",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 0",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 946684799999999",
           "S kernel i tcp 198.18.0.1 1 198.18.0.2 2 2 9 4102444800000000",
           "E kernel i tcp 198.18.0.1 1 198.18.0.2",  // an end short of a port
       })
    EXPECT_FALSE(parse_journal_line(bad, l)) << bad;
  EXPECT_FALSE(parse_journal_line(std::string(600, 'S'), l));
}

TEST(FlowJournalReplay, WhatStartedAndDidNotEndIsLeftSkippingBadLines) {
  std::string body = "P 7\n";
  body += journal_start_line(flow(1), "kernel", false);
  body += journal_start_line(flow(2), "kernel", false);
  body += "garbage\n";
  body += journal_end_line(flow(1, FlowState::kEnd), "kernel", false);
  body += journal_start_line(flow(3), "np_api", true);
  // The same connection reported by another plugin, or ended by another: separate reports.
  body += journal_start_line(flow(2), "np_api", true);
  body += journal_end_line(flow(3, FlowState::kEnd), "kernel", false);
  body += "P 8\n";
  body += "S kernel i tcp 198.18";  // cut by the kill
  const auto r = replay_journal(body, "j");
  EXPECT_EQ(r.pid, 8);
  EXPECT_EQ(r.truncated, 1u);
  EXPECT_EQ(r.malformed, 1u);
  ASSERT_EQ(r.live.size(), 3u);
  EXPECT_EQ(r.live[0].plugin, "kernel");
  EXPECT_EQ(r.live[0].start.src_port, 2);
  EXPECT_EQ(r.live[1].plugin, "np_api");
  EXPECT_EQ(r.live[1].start.src_port, 3);
  EXPECT_TRUE(r.live[1].explicit_rank);
  EXPECT_EQ(r.live[2].start.src_port, 2);
  EXPECT_EQ(r.live[0].start.start_time, flow(2).start_time);
}

// try15o: an in-place rewrite (no room for a new file) writes over the file without freeing a
// block, then cuts it to its length. A kill before the cut leaves the old content's rest after the
// new: the W line's length and hash keep the next start from reading it.
TEST(FlowJournalReplay, AnInPlaceRewriteKilledBeforeItsCutIsReadToItsFrame) {
  std::string content = journal_start_line(flow(2), "kernel", false);
  content += journal_start_line(flow(3), "kernel", false);
  std::string old_rest = journal_end_line(flow(2, FlowState::kEnd), "kernel", false);
  old_rest += journal_start_line(flow(4), "kernel", false);
  old_rest += "S kernel i tc";  // the old content's rest may begin and end anywhere
  const std::string body = "P 9\n" + journal_in_place_line(content) + content + old_rest;
  const auto r = replay_journal(body, "j");
  EXPECT_EQ(r.pid, 9);
  EXPECT_EQ(r.old_rest_bytes, old_rest.size());
  EXPECT_FALSE(r.rewrite_cut);
  EXPECT_EQ(r.truncated + r.malformed, 0u);
  ASSERT_EQ(r.live.size(), 2u);
  EXPECT_EQ(r.live[0].start.src_port, 2);
  EXPECT_EQ(r.live[1].start.src_port, 3);
  // Cut to its length and sealed (w): what was appended after it is read.
  std::string sealed = "P 9\n" + journal_in_place_line(content) + content;
  sealed[4] = 'w';
  sealed += journal_end_line(flow(3, FlowState::kEnd), "kernel", false);
  sealed += journal_start_line(flow(5), "kernel", false);
  const auto s = replay_journal(sealed, "j");
  EXPECT_EQ(s.truncated + s.malformed, 0u);
  ASSERT_EQ(s.live.size(), 2u);
  EXPECT_EQ(s.live[0].start.src_port, 2);
  EXPECT_EQ(s.live[1].start.src_port, 5);
  // The rewrite itself cut short (its start, then the old content): read as it is, and said.
  std::string cut = "P 9\n" + journal_in_place_line(content) + content.substr(0, 20) + old_rest;
  const auto c = replay_journal(cut, "j");
  EXPECT_TRUE(c.rewrite_cut);
  EXPECT_EQ(c.old_rest_bytes, 0u);
  EXPECT_EQ(c.malformed, 1u) << "the line the cut glued to the old content's rest";
  // A W line anywhere else, or not of its form, is no frame: a malformed line.
  const auto elsewhere = replay_journal("P 9\n" + content + journal_in_place_line(content), "j");
  EXPECT_EQ(elsewhere.malformed, 1u);
  EXPECT_EQ(elsewhere.live.size(), 2u);
  const auto bad = replay_journal("P 9\nW 12 zz\n" + content, "j");
  EXPECT_EQ(bad.malformed, 1u);
  EXPECT_EQ(bad.live.size(), 2u);
}

// try15f D2: the X line says the daemon stops; the inferred reports its ends end are the stop's
// (started again by a restart that finds them open). A tool's report ended then, or anything a
// later run (P line) dealt with, is not.
TEST(FlowJournalReplay, TheInferredReportsAStopEndedAreListedApart) {
  JournalLine l;
  ASSERT_TRUE(parse_journal_line("X 42", l));
  EXPECT_EQ(l.kind, JournalLine::Kind::kStop);
  EXPECT_EQ(l.pid, 42);
  EXPECT_FALSE(parse_journal_line("X", l));
  EXPECT_FALSE(parse_journal_line("X 0", l));
  std::string body = "P 7\n";
  body += journal_start_line(flow(1), "kernel", false);
  body += journal_start_line(flow(2), "kernel", false);
  body += journal_start_line(flow(3), "np_api", true);
  body += journal_start_line(flow(4), "kernel", false);
  body += journal_end_line(flow(4, FlowState::kEnd), "kernel", false);  // closed before the stop
  body += "X 7\n";
  body += journal_end_line(flow(1, FlowState::kEnd), "kernel", false);
  body += journal_end_line(flow(3, FlowState::kEnd), "np_api", true);
  auto r = replay_journal(body, "j");
  ASSERT_EQ(r.live.size(), 1u);
  EXPECT_EQ(r.live[0].start.src_port, 2) << "not ended by the stop: left live (a kill)";
  ASSERT_EQ(r.stopped.size(), 1u);
  EXPECT_EQ(r.stopped[0].plugin, "kernel");
  EXPECT_EQ(r.stopped[0].start.src_port, 1);
  EXPECT_EQ(r.stopped[0].start.experiment, flow(1).experiment);
  body += "P 8\n";  // the next run dealt with them
  r = replay_journal(body, "j");
  EXPECT_TRUE(r.stopped.empty());
}

// try15j D1: a start keeps the connections to start again as R lines until its plugins have
// started them: read back as a stop's ends are, unless a start line of theirs follows (the
// plugin's restart).
TEST(FlowJournalReplay, ConnectionsKeptToStartAgainAreOfferedAgainUntilStarted) {
  FlowID cookie = flow(1);
  cookie.socket_cookie = 99;
  const std::string r_line = journal_restart_line(cookie, "kernel");
  EXPECT_EQ(r_line.substr(0, 2), "R ");
  JournalLine l;
  ASSERT_TRUE(parse_journal_line(r_line.substr(0, r_line.size() - 1), l));
  EXPECT_EQ(l.kind, JournalLine::Kind::kRestart);
  EXPECT_EQ(l.flow.socket_cookie, 99u);
  std::string body = "P 9\n" + r_line + journal_restart_line(flow(2), "netlink");
  body += journal_start_line(flow(3), "np_api", true);
  auto r = replay_journal(body, "j");
  ASSERT_EQ(r.stopped.size(), 2u) << "a start that died before its plugins ran";
  EXPECT_EQ(r.live.size(), 1u);
  body += journal_start_line(flow(1), "kernel", false);  // its plugin started it
  r = replay_journal(body, "j");
  ASSERT_EQ(r.stopped.size(), 1u);
  EXPECT_EQ(r.stopped[0].plugin, "netlink");
  EXPECT_EQ(r.live.size(), 2u);
}

TEST(FlowJournalFile, RecordsBatchesAndStaysBoundedByCompaction) {
  TempDir dir;
  prometheus::Registry metrics;
  std::string path;
  {
    FlowJournal j(metrics);
    JournalReplay previous;
    ASSERT_TRUE(j.open(dir.path, previous));
    EXPECT_TRUE(previous.live.empty());
    path = j.path();
    EXPECT_EQ(path.rfind(dir.path + "/flows.", 0), 0u);
    j.start_writing();
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // One connection kept open; many that open and close.
    std::vector<FlowID> open{flow(9)};
    j.record(open, "kernel", false);
    for (int i = 0; i < 30000; ++i) {
      std::vector<FlowID> batch{flow(static_cast<std::uint16_t>(10000 + i % 20000))};
      j.record(batch, "kernel", false);
      batch[0].state = FlowState::kEnd;
      j.record(batch, "kernel", false);
    }
    EXPECT_EQ(j.live_size(), 1u);
    EXPECT_LE(std::filesystem::file_size(path), (1u << 20) + 200u) << "compacted";
    // Ongoing events and other origins are not kept.
    std::vector<FlowID> other{flow(11), flow(12)};
    other[0].state = FlowState::kOngoing;
    other[1].origin = FlowOrigin::kObserved;
    j.record(other, "netflow", false);
    EXPECT_EQ(j.live_size(), 1u);
  }
  const auto r = replay_journal(slurp(path), path);
  EXPECT_EQ(r.pid, ::getpid());
  EXPECT_EQ(r.truncated + r.malformed, 0u);
  ASSERT_EQ(r.live.size(), 1u);
  EXPECT_EQ(r.live[0].start.src_port, 9);
}

TEST(FlowJournalFile, ASecondJournalOfTheSameDirectoryIsRefusedAndEmptyWorkDirKeepsNone) {
  TempDir dir;
  prometheus::Registry m1, m2, m3;
  FlowJournal a(m1), b(m2), none(m3);
  JournalReplay previous;
  ASSERT_TRUE(a.open(dir.path, previous));
  EXPECT_FALSE(b.open(dir.path, previous)) << "locked by the first";
  EXPECT_FALSE(b.active());
  EXPECT_FALSE(none.open("", previous));
  EXPECT_TRUE(FlowJournal::path_for("").empty());
}

// 100 flows that start and end (about 15 KB of journal): growth without live reports.
void churn_round(FlowJournal& j) {
  std::vector<FlowID> starts, ends;
  for (std::uint16_t p = 100; p < 200; ++p) {
    starts.push_back(flow(p));
    ends.push_back(flow(p, FlowState::kEnd));
  }
  j.record(starts, "kernel", false);
  j.record(ends, "kernel", false);
}

// A journal open and writing in a directory of its own.
struct WritingJournal {
  WritingJournal() {
    JournalReplay previous;
    ok = j.open(dir.path, previous);
    if (ok) j.start_writing();
  }
  TempDir dir;
  prometheus::Registry metrics;
  FlowJournal j{metrics};
  bool ok = false;
};

// A "full disk" for this process while it lives: files cannot grow past `bytes` (RLIMIT_FSIZE;
// a write beyond fails with EFBIG instead of raising SIGXFSZ).
struct FullDisk {
  explicit FullDisk(rlim_t bytes) {
    ok = ::getrlimit(RLIMIT_FSIZE, &was) == 0;
    old_handler = ::signal(SIGXFSZ, SIG_IGN);
    rlimit full = was;
    full.rlim_cur = bytes;
    ok = ok && ::setrlimit(RLIMIT_FSIZE, &full) == 0;
  }
  ~FullDisk() {
    ::setrlimit(RLIMIT_FSIZE, &was);
    ::signal(SIGXFSZ, old_handler);
  }
  rlimit was{};
  void (*old_handler)(int) = nullptr;
  bool ok = false;
};

// try15l: a full disk refused a write; flowd went on appending once space came back, after a cut
// line (the next write glued to it was lost) and without the ends it could not write: the next
// start sent those ends again (4,871 of 5,000). Nothing is appended to a stale file: it is
// rewritten from memory once writing works again. The full disk is RLIMIT_FSIZE here (EFBIG).
TEST(FlowJournalFile, AJournalAFullDiskLeftBehindIsRewrittenFromMemoryOnceWritingWorks) {
  WritingJournal w;
  ASSERT_TRUE(w.ok);
  prometheus::Registry& metrics = w.metrics;
  FlowJournal& j = w.j;
  const std::string path = j.path();
  std::vector<FlowID> starts, ends;
  for (std::uint16_t p = 1; p <= 200; ++p) {
    starts.push_back(flow(p));
    if (p <= 100) ends.push_back(flow(p, FlowState::kEnd));
  }
  j.record(starts, "kernel", false);
  {
    FullDisk full(1000);  // smaller than the file, and than its rewrite: every write fails
    ASSERT_TRUE(full.ok);
    j.record(ends, "kernel", false);
    std::vector<FlowID> more{flow(201)};
    j.record(more, "kernel", false);
    struct stat st {};
    ASSERT_EQ(::stat((path + ".lock").c_str(), &st), 0);
    EXPECT_TRUE(st.st_mode & S_IXUSR) << "behind: said to a start after a kill";
  }
  // Space again: the next write (a second after the last try) rewrites the file from memory.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::vector<FlowID> last{flow(202)};
  j.record(last, "kernel", false);
  struct stat st {};
  ASSERT_EQ(::stat((path + ".lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "complete again";
  const auto r = replay_journal(slurp(path), path);
  EXPECT_EQ(r.truncated + r.malformed, 0u);
  std::set<int> live;
  for (const auto& rep : r.live) live.insert(rep.start.src_port);
  std::set<int> want;
  for (int p = 101; p <= 202; ++p) want.insert(p);
  EXPECT_EQ(live, want) << "the ends the full disk refused are in the file, and the start too";
  EXPECT_GE(
      test::metric_value(metrics, "flowd_flow_journal_failures_total", {{"reason", "write_failed"}})
          .value_or(0),
      1);
}

// try15m: the rewrite was tried only when a flow was recorded: a kill -9 after the disk had room
// again, with no flow since, found the journal outdated. The daemon's main loop retries each second
// while the file is behind (Bus::retry_journal).
TEST(FlowJournalFile, AStaleJournalIsRewrittenWhileIdle) {
  WritingJournal w;
  ASSERT_TRUE(w.ok);
  prometheus::Registry& metrics = w.metrics;
  FlowJournal& j = w.j;
  Bus bus(metrics);
  bus.set_journal(&j);
  EXPECT_FALSE(bus.retry_journal()) << "nothing to retry";
  std::vector<FlowID> starts, ends;
  for (std::uint16_t p = 1; p <= 50; ++p) {
    starts.push_back(flow(p));
    if (p <= 25) ends.push_back(flow(p, FlowState::kEnd));
  }
  j.record(starts, "kernel", false);
  {
    FullDisk full(100);  // less than the 25 live starts' rewrite
    ASSERT_TRUE(full.ok);
    j.record(ends, "kernel", false);
  }
  EXPECT_TRUE(j.stale());
  EXPECT_TRUE(bus.retry_journal()) << "not due yet: tried a moment ago";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_FALSE(bus.retry_journal()) << "rewritten";
  const auto r = replay_journal(slurp(j.path()), j.path());
  EXPECT_EQ(r.truncated + r.malformed, 0u);
  EXPECT_EQ(r.live.size(), 25u) << "the ends the full disk refused are in the file";
  bus.set_journal(nullptr);
}

// `flag` (FS_IMMUTABLE_FL: chattr +i, no entry added, renamed or removed in a directory, its files
// still written; FS_APPEND_FL: chattr +a, a file only appended to) set on `path` for the object's
// lifetime. Root only (CAP_LINUX_IMMUTABLE), and a file system that has the flag.
struct FileFlag {
  FileFlag(const std::string& path, int flag) : fd(::open(path.c_str(), O_RDONLY)) {
    ok = fd && ::ioctl(fd.get(), FS_IOC_GETFLAGS, &was) == 0;
    int flags = was | flag;
    ok = ok && ::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags) == 0;
  }
  ~FileFlag() {
    if (ok) ::ioctl(fd.get(), FS_IOC_SETFLAGS, &was);
  }
  UniqueFd fd;
  int was = 0;
  bool ok = false;
};

// try15n 5: a work_dir flowd cannot add a file to (read-only for its user; here immutable): the
// compaction's new file failed, the file was taken as stale, and nothing more was appended, though
// appends worked. A rewrite that only shrinks a complete file and fails leaves it appended to, up
// to twice its bound (1 MiB here); past that it is shrunk in place (framed: its W line, sealed).
TEST(FlowJournalFile, AWorkDirThatTakesNoNewFileKeepsTheJournalAppendedToAndBounded) {
  if (::geteuid() != 0) GTEST_SKIP() << "privileged: chattr +i needs root";
  WritingJournal w;
  ASSERT_TRUE(w.ok);
  TempDir& dir = w.dir;
  prometheus::Registry& metrics = w.metrics;
  FlowJournal& j = w.j;
  std::vector<FlowID> live{flow(1), flow(2)};
  j.record(live, "kernel", false);
  auto round = [&] { churn_round(j); };
  auto live_ports = [&] {
    std::set<int> ports;
    for (const auto& rep : replay_journal(slurp(j.path()), j.path()).live)
      ports.insert(rep.start.src_port);
    return ports;
  };
  {
    FileFlag frozen(dir.path, FS_IMMUTABLE_FL);
    if (!frozen.ok) GTEST_SKIP() << "the file system of " << dir.path << " has no immutable flag";
    while (std::filesystem::file_size(j.path()) < (3u << 19)) round();  // 1.5 MiB
    EXPECT_FALSE(j.stale()) << "appends work: the file is complete";
    EXPECT_GE(test::metric_value(metrics, "flowd_flow_journal_failures_total",
                                 {{"reason", "rewrite_failed"}})
                  .value_or(0),
              1);
    std::vector<FlowID> third{flow(3)};
    j.record(third, "kernel", false);
    EXPECT_EQ(live_ports(), (std::set<int>{1, 2, 3}))
        << "the appends after the failed rewrite are there";
    // Past twice the bound, at the next try (a second after the last): shrunk in place.
    while (std::filesystem::file_size(j.path()) <= (2u << 20) + (64u << 10)) round();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    round();
    EXPECT_LT(std::filesystem::file_size(j.path()), 1u << 20);
    const std::string text = slurp(j.path());
    EXPECT_EQ(text.substr(text.find('\n') + 1, 2), "w ") << "rewritten in place, and sealed";
    EXPECT_EQ(live_ports(), (std::set<int>{1, 2, 3}));
    EXPECT_FALSE(j.stale());
  }
  // Writable again: the next batch a second on compacts it (a new file, no frame).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  round();
  std::vector<FlowID> more{flow(4)};
  j.record(more, "kernel", false);
  EXPECT_LT(std::filesystem::file_size(j.path()), 1u << 20);
  EXPECT_EQ(live_ports(), (std::set<int>{1, 2, 3, 4}));
}

// try16a 3: an append-only journal (chattr +a) in a directory that takes no new file: past twice
// its bound, the rewrite in place could not clear O_APPEND, and the file was taken as behind:
// nothing more was appended, though appends worked. Nothing was written over: appended to still.
TEST(FlowJournalFile, AnAppendOnlyJournalPastItsBoundIsStillAppendedTo) {
  if (::geteuid() != 0) GTEST_SKIP() << "privileged: chattr needs root";
  WritingJournal w;
  ASSERT_TRUE(w.ok);
  FlowJournal& j = w.j;
  std::vector<FlowID> live{flow(1)};
  j.record(live, "kernel", false);
  FileFlag append_only(j.path(), FS_APPEND_FL);
  FileFlag frozen(w.dir.path, FS_IMMUTABLE_FL);
  if (!append_only.ok || !frozen.ok) GTEST_SKIP() << "no chattr flags on " << w.dir.path;
  auto round = [&] { churn_round(j); };
  while (std::filesystem::file_size(j.path()) <= (2u << 20) + (64u << 10)) round();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  round();  // the try in place, refused
  std::vector<FlowID> more{flow(2)};
  j.record(more, "kernel", false);
  EXPECT_FALSE(j.stale()) << "nothing was written over: the file is complete";
  std::set<int> ports;
  for (const auto& rep : replay_journal(slurp(j.path()), j.path()).live)
    ports.insert(rep.start.src_port);
  EXPECT_EQ(ports, (std::set<int>{1, 2})) << "appended after the refused rewrite";
}

// try15o: a kill -9 while the disk was still full left an outdated journal (documented: ends
// sent again, flows never ended), and the next start did not say so; nor did it when the journal
// had been removed and could not be written again (try15n 6). While the journal is behind, its
// lock file carries its owner's execute bit (a mode change needs no block), which the start reads.
TEST(FlowJournalFile, AStartSaysTheJournalWasBehindWhenThePreviousFlowdLeftItSo) {
  TempDir dir;
  const std::string path = FlowJournal::path_for(dir.path);
  {
    std::ofstream out(path);
    out << "P 77\n" << journal_start_line(flow(1), "kernel", false);
  }
  std::ofstream(path + ".lock").flush();
  for (const mode_t mode : {0700, 0600}) {
    ASSERT_EQ(::chmod((path + ".lock").c_str(), mode), 0);
    prometheus::Registry metrics;
    FlowJournal j(metrics);
    JournalReplay previous;
    ASSERT_TRUE(j.open(dir.path, previous));
    EXPECT_EQ(previous.behind, mode == 0700);
    EXPECT_EQ(previous.live.size(), 1u);
  }
  // Gone: the journal removed, and not written again.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::chmod((path + ".lock").c_str(), 0700), 0);
  prometheus::Registry metrics;
  FlowJournal j(metrics);
  JournalReplay previous;
  ASSERT_TRUE(j.open(dir.path, previous));
  EXPECT_TRUE(previous.behind);
  EXPECT_TRUE(previous.live.empty());
  // Written (complete) by this start: no longer behind.
  j.start_writing();
  struct stat st {};
  ASSERT_EQ(::stat((path + ".lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// try15m: a journal removed while flowd ran (rm, a clean-up script) was written to a file nobody
// reads: a start after a kill found none. It is written again at the next batch a second on.
TEST(FlowJournalFile, AJournalRemovedWhileFlowdRunsIsWrittenAgain) {
  WritingJournal w;
  ASSERT_TRUE(w.ok);
  FlowJournal& j = w.j;
  std::vector<FlowID> first{flow(1)};
  j.record(first, "kernel", false);
  ASSERT_EQ(::unlink(j.path().c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::vector<FlowID> second{flow(2)};
  j.record(second, "kernel", false);
  ASSERT_TRUE(std::filesystem::exists(j.path()));
  EXPECT_EQ(replay_journal(slurp(j.path()), j.path()).live.size(), 2u);
}

// try16c F1: a journal removed while flowd runs, in a directory that takes no new file: flowd said
// "written again", appended to the removed file, and left the lock unmarked, so a start after a
// kill said nothing of the flows it could not end. The journal is behind now (the lock's mark, the
// size 0) and written again once the directory takes it.
TEST(FlowJournalFile, AJournalRemovedWhereNoNewFileCanBeMadeIsBehindUntilItCanBe) {
  if (::geteuid() != 0) GTEST_SKIP() << "privileged: chattr +i needs root";
  WritingJournal w;
  ASSERT_TRUE(w.ok);
  FlowJournal& j = w.j;
  std::vector<FlowID> first{flow(1)};
  j.record(first, "kernel", false);
  ASSERT_EQ(::unlink(j.path().c_str()), 0);
  std::vector<FlowID> second{flow(2)}, third{flow(3)};
  {
    FileFlag immutable(w.dir.path, FS_IMMUTABLE_FL);
    if (!immutable.ok) GTEST_SKIP() << "the file system takes no chattr +i";
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    j.record(second, "kernel", false);
    EXPECT_FALSE(std::filesystem::exists(j.path()));
    struct stat st {};
    ASSERT_EQ(::stat((j.path() + ".lock").c_str(), &st), 0);
    EXPECT_NE(st.st_mode & S_IXUSR, 0u) << "the lock says the journal is behind";
    EXPECT_EQ(test::metric_value(w.metrics, "flowd_flow_journal_bytes", {}).value_or(-1), 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  j.record(third, "kernel", false);
  ASSERT_TRUE(std::filesystem::exists(j.path()));
  EXPECT_EQ(replay_journal(slurp(j.path()), j.path()).live.size(), 3u);
}

// try15l: a journal larger than flowd reads (256 MiB; corrupt, or not flowd's) made every start
// run without one until someone removed it. It is moved aside and a new one is kept.
TEST(FlowJournalFile, AJournalTooLargeToReadIsMovedAsideAndANewOneKept) {
  TempDir dir;
  prometheus::Registry metrics;
  const std::string path = FlowJournal::path_for(dir.path);
  {
    std::ofstream out(path);
    out << "S kernel i tcp 1\n";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(::truncate(path.c_str(), (256 << 20) + 1), 0);  // sparse
  FlowJournal j(metrics);
  JournalReplay previous;
  ASSERT_TRUE(j.open(dir.path, previous)) << "a journal is kept";
  EXPECT_TRUE(previous.live.empty());
  EXPECT_TRUE(std::filesystem::exists(path + ".too-big"));
  j.start_writing();
  std::vector<FlowID> batch{flow(7)};
  j.record(batch, "kernel", false);
  const auto r = replay_journal(slurp(path), path);
  ASSERT_EQ(r.live.size(), 1u);
  EXPECT_EQ(r.live[0].start.src_port, 7);
}

TEST(FlowJournalFile, WhatWasLeftIsReadBackBeforeAnythingIsWritten) {
  TempDir dir;
  prometheus::Registry m1, m2;
  std::string path;
  {
    FlowJournal j(m1);
    JournalReplay previous;
    ASSERT_TRUE(j.open(dir.path, previous));
    j.start_writing();
    std::vector<FlowID> batch{flow(1), flow(2)};
    j.record(batch, "kernel", false);
    path = j.path();
  }
  {
    std::ofstream out(path, std::ios::app);
    out << "S kernel i tcp 1";  // cut short
  }
  FlowJournal j(m2);
  JournalReplay previous;
  ASSERT_TRUE(j.open(dir.path, previous));
  EXPECT_EQ(previous.live.size(), 2u);
  EXPECT_EQ(previous.truncated, 1u);
  const std::string left = slurp(path);
  EXPECT_TRUE(left.ends_with("S kernel i tcp 1")) << "open() writes nothing: " << left;
  j.start_writing();  // the live set restored so far (none here) replaces the file
  EXPECT_EQ(replay_journal(slurp(path), path).live.size(), 0u);
}

// The bus restores a report without a word to the backends, then follows it as any live report:
// the plugin's end of it passes; an ended explicit report's later end from the tool is dropped.
TEST(FlowJournalBus, ARestoredReportIsLiveButSentNowhereAndARecoveredEndGoesOut) {
  prometheus::Registry metrics;
  Bus bus(metrics);
  auto q = bus.make_queue("udp_firefly", 64);
  bus.set_subscribers({{"udp_firefly", q}});
  FlowID kept = flow(1);
  kept.plugin = "kernel";
  bus.restore(kept, LocalFlowArbiter::Rank::kInferred);
  EXPECT_EQ(q->size(), 0u) << "the collector has its start";
  ASSERT_EQ(bus.live_reports("kernel").size(), 1u);
  FlowID gone = flow(2, FlowState::kEnd);
  gone.plugin = "np_api";
  gone.end_time = Clock::now();
  std::vector<FlowID> ends{gone};
  bus.publish_recovered_ends(ends);
  EXPECT_EQ(q->size(), 1u);
  auto np = bus.publisher("np_api", true);
  FlowID retry = flow(2, FlowState::kEnd);
  np->publish(std::span<const FlowID>(&retry, 1));
  EXPECT_EQ(q->size(), 1u) << "the tool's end of a flow ended at the restart is a retry";
  auto kernel = bus.publisher("kernel");
  FlowID end = flow(1, FlowState::kEnd);
  kernel->publish(std::span<const FlowID>(&end, 1));
  EXPECT_EQ(q->size(), 2u);
  EXPECT_TRUE(bus.live_reports("kernel").empty());
}

// try15g 5: more recovered ends than a backend's queue holds wait for room instead of being
// dropped; the backends read meanwhile (here one slow, one fast).
TEST(FlowJournalBus, MoreRecoveredEndsThanAQueueHoldsWaitForRoomAndAllGoOut) {
  prometheus::Registry metrics;
  Bus bus(metrics);
  auto slow = bus.make_queue("udp_firefly", 4);
  auto fast = bus.make_queue("prometheus", 16);
  bus.set_subscribers({{"udp_firefly", slow}, {"prometheus", fast}});
  std::vector<FlowID> ends;
  for (std::uint16_t p = 1; p <= 100; ++p) {
    FlowID f = flow(p, FlowState::kEnd);
    f.plugin = "kernel";
    f.end_time = Clock::now();
    ends.push_back(f);
  }
  const auto read = [](EventQueue& q, std::chrono::milliseconds pause) {
    std::vector<FlowID> got, batch;
    while (got.size() < 100 && q.pop_batch(batch, 3, {})) {
      got.insert(got.end(), batch.begin(), batch.end());
      std::this_thread::sleep_for(pause);
    }
    return got;
  };
  auto slow_got =
      std::async(std::launch::async, read, std::ref(*slow), std::chrono::milliseconds(1));
  auto fast_got =
      std::async(std::launch::async, read, std::ref(*fast), std::chrono::milliseconds(0));
  bus.publish_recovered_ends(ends);
  EXPECT_EQ(bus.dropped(), 0u);
  for (auto* got : {&slow_got, &fast_got}) {
    ASSERT_EQ(got->wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto flows = got->get();
    ASSERT_EQ(flows.size(), 100u);
    for (std::uint16_t i = 0; i < 100; ++i) EXPECT_EQ(flows[i].src_port, i + 1) << "in order";
  }
}

// Ten recovered ends (ports 1 to 10: odd ones the kernel plugin's, inferred; even ones np_api's,
// explicit) kept in a journal while they are ended, and a bus with one queue of 4 delivering them
// as Runtime::apply does: the journal ends what every backend processed.
struct RecoveredDelivery {
  RecoveredDelivery() {
    EXPECT_TRUE(journal.open(dir.path, previous));
    bus.set_subscribers({{"udp_firefly", q}});
    for (std::uint16_t p = 1; p <= 10; ++p) {
      FlowID f = flow(p, FlowState::kEnd);
      f.plugin = p % 2 ? "kernel" : "np_api";
      f.end_time = Clock::now();
      ends.push_back(f);
      ranks.push_back(p % 2 ? 0 : 1);
    }
    journal.record_recovered(ends, ranks, false);
    journal.start_writing();
    recover = std::async(std::launch::async, [this] {
      bus.publish_recovered_ends(
          ends, stop.get_token(),
          [this](std::size_t processed) {
            journal.record_recovered(std::span(ends).subspan(journaled, processed - journaled),
                                     std::span(ranks).subspan(journaled, processed - journaled),
                                     true);
            journaled = processed;
          },
          std::chrono::seconds(5), std::chrono::seconds(10));
    });
  }
  JournalReplay left() const { return replay_journal(slurp(journal.path()), "j"); }
  std::size_t live() const { return left().live.size(); }
  std::set<int> live_ports() const {
    std::set<int> ports;
    for (const auto& r : left().live) ports.insert(r.start.src_port);
    return ports;
  }

  TempDir dir;
  prometheus::Registry metrics;
  FlowJournal journal{metrics};
  JournalReplay previous;
  Bus bus{metrics};
  std::shared_ptr<EventQueue> q = bus.make_queue("udp_firefly", 4);
  std::vector<FlowID> ends;
  std::vector<std::uint8_t> ranks;
  std::stop_source stop;
  std::size_t journaled = 0;
  std::future<void> recover;  // last: joined first
};

// try15i A: the restart rewrote the journal without the reports it was ending while their ends were
// still in the backends' queues: a kill (or a stop) then lost them for good. They now stay in the
// journal until every backend has processed their ends (it came back for more after taking them).
TEST(FlowJournalBus, RecoveredEndsLeaveTheJournalOnlyOnceEveryBackendProcessedThem) {
  RecoveredDelivery d;
  EXPECT_EQ(d.live(), 10u) << "the rewrite keeps the reports being ended";
  // The backend takes 4 (all its queue holds) and processes them only when it comes back for more;
  // then it stops reading: the start is stopped while it waits.
  std::vector<FlowID> batch;
  ASSERT_TRUE(d.q->pop_batch(batch, 4, {}));
  EXPECT_EQ(batch.size(), 4u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(d.live(), 10u) << "taken, not processed yet: still in the journal";
  ASSERT_TRUE(d.q->pop_batch(batch, 2, {}));  // the first 4 are processed now
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  d.stop.request_stop();
  ASSERT_EQ(d.recover.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(d.journaled, 4u);
  const auto left = d.left();
  ASSERT_EQ(left.live.size(), 6u) << "the next start ends the 6 not processed\n"
                                  << slurp(d.journal.path());
  for (const auto& r : left.live) {
    EXPECT_EQ(r.explicit_rank, r.start.src_port % 2 == 0) << "with its own plugin and rank";
    EXPECT_EQ(r.plugin, r.start.src_port % 2 ? "kernel" : "np_api");
  }
  EXPECT_EQ(d.live_ports(), (std::set<int>{5, 6, 7, 8, 9, 10}));
}

// try15k A2: a stop cut the delivery of the recovered ends short, and the backends' drain sent
// those already in their queues; the journal kept them live, and the next start sent them again.
// What the drain processed leaves the journal at the stop's settle; what no queue took stays.
TEST(FlowJournalBus, RecoveredEndsTheStopsDrainSentLeaveTheJournalAtTheSettle) {
  RecoveredDelivery d;
  // The queue full (4 of 10), the backend has read nothing yet: the daemon stops.
  for (int i = 0; i < 200 && d.q->size() < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(d.q->size(), 4u);
  d.stop.request_stop();
  ASSERT_EQ(d.recover.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(d.journaled, 0u);
  // The stop: the backend drains its queue (sends those 4), then the bus settles.
  d.bus.set_subscribers({});
  d.q->close();
  std::vector<FlowID> batch;
  std::size_t drained = 0;
  while (d.q->pop_batch(batch, 16, {})) drained += batch.size();
  EXPECT_EQ(drained, 4u);
  EXPECT_EQ(d.live(), 10u);
  d.bus.settle_journal_ends();
  EXPECT_EQ(d.journaled, 4u) << "what the drain sent leaves the journal";
  EXPECT_EQ(d.live_ports(), (std::set<int>{5, 6, 7, 8, 9, 10}))
      << "the 6 no queue took stay for the next start";
  d.bus.settle_journal_ends();
  EXPECT_EQ(d.journaled, 4u) << "settled once";
}

// try15k A2 (the rest): one backend's queue ahead of another's when a stop cut the delivery
// short: the journal keeps what the slower one did not take, and the next start sent the faster
// one's again. The backends are given the ends in step: a fast backend takes no more than the
// slowest has room for.
TEST(FlowJournalBus, RecoveredEndsAreGivenToTheBackendsInStep) {
  prometheus::Registry metrics;
  Bus bus(metrics);
  auto fast = bus.make_queue("udp_firefly", 4);
  auto stuck = bus.make_queue("prometheus", 4);
  bus.set_subscribers({{"udp_firefly", fast}, {"prometheus", stuck}});
  std::vector<FlowID> ends;
  for (std::uint16_t p = 1; p <= 10; ++p) ends.push_back(flow(p, FlowState::kEnd));
  std::stop_source stop;
  std::atomic<std::size_t> taken{0};
  std::jthread reader([&](std::stop_token st) {
    std::vector<FlowID> batch;
    while (fast->pop_batch(batch, 16, st)) taken += batch.size();
  });
  auto recover = std::async(std::launch::async, [&] {
    bus.publish_recovered_ends(
        ends, stop.get_token(), [](std::size_t) {}, std::chrono::seconds(5),
        std::chrono::seconds(10));
  });
  for (int i = 0; i < 200 && taken < 4; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(taken.load(), 4u) << "the fast backend ran ahead of the stuck one";
  stop.request_stop();
  ASSERT_EQ(recover.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(stuck->size(), 4u);
  EXPECT_EQ(bus.dropped_for("udp_firefly"), 0u) << "not lost: the journal keeps them";
  EXPECT_EQ(bus.dropped_for("prometheus"), 0u);
  fast->close();
}

// try15i B: a plugin's end was journaled when published: one still in a backend's queue at a
// kill -9 was taken for sent, and the restart did not end its flow (a start without its end at the
// collector). The end line waits until every backend has processed it; a start of the same
// connection meanwhile writes it first (the replay would end the new start otherwise).
TEST(FlowJournalBus, APluginsEndIsJournaledOnceEveryBackendProcessedIt) {
  TempDir dir;
  prometheus::Registry metrics;
  FlowJournal journal(metrics);
  JournalReplay previous;
  ASSERT_TRUE(journal.open(dir.path, previous));
  journal.start_writing();
  Bus bus(metrics);
  bus.set_journal(&journal);
  auto q = bus.make_queue("udp_firefly", 16);
  bus.set_subscribers({{"udp_firefly", q}});
  auto np = bus.publisher("np_api", true);
  const auto live = [&] { return replay_journal(slurp(journal.path()), "j").live.size(); };
  std::vector<FlowID> starts{flow(1), flow(2)};
  np->publish(starts);
  EXPECT_EQ(live(), 2u) << "a start is journaled at once";
  std::vector<FlowID> batch;
  ASSERT_TRUE(q->pop_batch(batch, 16, {}));
  FlowID end = flow(1, FlowState::kEnd);
  np->publish(std::span<const FlowID>(&end, 1));
  EXPECT_EQ(live(), 2u) << "its end is queued, not sent: a kill now leaves it to the restart";
  ASSERT_TRUE(q->pop_batch(batch, 16, {}));  // the starts processed; the end taken
  EXPECT_EQ(live(), 2u);
  // The backend comes back for more: the end is processed, and journaled (by the hook).
  auto more = std::async(std::launch::async, [&] { return q->pop_batch(batch, 16, {}); });
  for (int i = 0; i < 200 && live() != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(live(), 1u) << slurp(journal.path());
  // The end of flow 2, queued; then flow 2 starts again before the backend sent the end: the end
  // line goes first, and the new start stays live.
  FlowID end2 = flow(2, FlowState::kEnd);
  np->publish(std::span<const FlowID>(&end2, 1));
  ASSERT_EQ(more.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  FlowID again = flow(2);
  again.start_time = *again.start_time + std::chrono::seconds(5);
  np->publish(std::span<const FlowID>(&again, 1));
  const auto r = replay_journal(slurp(journal.path()), "j");
  ASSERT_EQ(r.live.size(), 1u) << slurp(journal.path());
  EXPECT_EQ(r.live[0].start.start_time, again.start_time) << "the new start";
  // The daemon's stop settles what is left.
  FlowID end3 = flow(2, FlowState::kEnd);
  np->publish(std::span<const FlowID>(&end3, 1));
  EXPECT_EQ(live(), 1u);
  bus.settle_journal_ends();
  EXPECT_EQ(live(), 0u);
}

// A backend that takes nothing is waited for `stall` at most: the rest is dropped, counted for it
// and said in the log as the flow journal's (before: as the kernel plugin's events).
TEST(FlowJournalBus, RecoveredEndsABackendDoesNotTakeAreDroppedAfterTheStallAsTheJournals) {
  prometheus::Registry metrics;
  Bus bus(metrics);
  std::ostringstream log;
  auto core = get_logger("core");
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  sink->set_pattern("%v");
  core->sinks().push_back(sink);
  auto stuck = bus.make_queue("kafka", 2);
  bus.set_subscribers({{"kafka", stuck}});
  std::vector<FlowID> ends;
  for (std::uint16_t p = 1; p <= 10; ++p) {
    FlowID f = flow(p, FlowState::kEnd);
    f.plugin = "kernel";
    ends.push_back(f);
  }
  const auto t0 = std::chrono::steady_clock::now();
  bus.publish_recovered_ends(ends, {}, {}, std::chrono::milliseconds(50), std::chrono::seconds(30));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  core->sinks().pop_back();
  EXPECT_EQ(stuck->size(), 2u);
  EXPECT_EQ(bus.dropped_for("kafka"), 8u);
  EXPECT_NE(log.str().find("backend kafka's queue is full: 8 of the 10 ends of flows the previous "
                           "flowd left live (flow journal) dropped, its backend took none for "
                           "0.05 s"),
            std::string::npos)
      << log.str();
  EXPECT_EQ(log.str().find("kernel"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace flowd
