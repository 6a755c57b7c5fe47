// SPDX-License-Identifier: Apache-2.0
// The flow journal (issue 15 E3): its strict line parser, the replay of what a killed flowd left,
// the bound on its size (compaction), its lock, and the bus's restore of the reports it kept.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/bus.hpp"
#include "core/flow_journal.hpp"

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
  bus.publish_recovered_ends(ends, {}, std::chrono::milliseconds(50), std::chrono::seconds(30));
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
