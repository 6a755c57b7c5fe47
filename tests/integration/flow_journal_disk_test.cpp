// SPDX-License-Identifier: Apache-2.0
// The flow journal on a work_dir that fills up: a tmpfs of the test's own (privileged: mount).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>

#include "core/flow_journal.hpp"
#include "daemon_fixture.hpp"
#include "read_only_bind.hpp"

namespace flowd::test {
namespace {

// The Daemon's configuration, np_api checking no connection (its flows stay live until ended).
std::string np_config(const Daemon& d) {
  std::string cfg = d.config();
  const std::string section = "[plugin.np_api]\n";
  cfg.insert(cfg.find(section) + section.size(), "check_interval = 0\n");
  return cfg;
}

// np_api lines for the flows from 127.0.0.1 ports [from, to).
std::string lines(const std::string& state, int from, int to) {
  std::string out;
  for (int p = from; p < to; ++p)
    out += state + " tcp 127.0.0.1 " + std::to_string(p) + " 127.0.0.1 5777 2 9\n";
  return out;
}

// A tmpfs of `size` mounted on `dir` for the object's lifetime.
struct Tmpfs {
  Tmpfs(const std::string& dir, const std::string& size) : path(dir) {
    std::string out;
    ok = run_shell("mount -t tmpfs -o size=" + size + ",mode=0755 flowd-test " + dir, "", out) == 0;
  }
  ~Tmpfs() {
    std::string out;
    if (ok) run_shell("umount -l " + path, "", out);
  }
  std::string path;
  bool ok = false;
};

// flowd (np_api, udp_firefly, prometheus) running with its work_dir on a tmpfs of 1 MiB.
class FlowJournalDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root to mount a tmpfs as work_dir";
    std::filesystem::create_directories(work);
    fs = std::make_unique<Tmpfs>(work, "1m");
    ASSERT_TRUE(fs->ok);
    d.start(np_config(d));
  }
  // Fills the tmpfs (a filler file, until no block is left).
  void fill() {
    std::string out;
    run_shell("dd if=/dev/zero of=" + work + "/filler bs=4k 2>&1", "", out);
  }
  // The ends the collector receives (up to `count`, until quiet for `idle`), by source port.
  std::map<int, int> ends_by_port(std::size_t count, std::chrono::milliseconds idle) {
    std::map<int, int> ended;
    for (const auto& msg : d.rx4.receive_many(count, idle)) {
      auto j = nlohmann::json::parse(msg.substr(msg.find('{')));
      if (j["flow-lifecycle"]["state"] == "end") ++ended[j["flow-id"]["src-port"].get<int>()];
    }
    return ended;
  }

  // The journal in work_dir ("" if none).
  std::string journal_file() const {
    for (const auto& e : std::filesystem::directory_iterator(work))
      if (e.path().extension() == ".journal") return e.path().string();
    return {};
  }
  // Waits up to 5 s for the log's "complete again" (the file rewritten from memory).
  bool complete_again() {
    for (int i = 0; i < 50; ++i) {
      if (d.proc->log().find("complete again") != std::string::npos) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }
  // The journal was rewritten in place (its second line a sealed frame) and holds `live` reports.
  void expect_rewritten_in_place(const std::string& journal, std::size_t live) {
    const std::string text = read_file(journal);
    EXPECT_EQ(text.substr(text.find('\n') + 1, 2), "w ") << "rewritten in place, and sealed";
    const auto r = replay_journal(text, journal);
    EXPECT_EQ(r.live.size(), live) << d.proc->log();
    EXPECT_EQ(r.old_rest_bytes, 0u);
  }
  void kill9() {
    d.proc->signal(SIGKILL);
    ASSERT_EQ(d.proc->wait(5s), 128 + SIGKILL);
  }
  // Started again: the `count` flows left live (ports from `first_port`) end, each once.
  void expect_each_left_ends_once(std::size_t count, int first_port) {
    d.start(np_config(d));
    const auto ended = ends_by_port(count, 2s);
    std::size_t twice = 0, old_ones = 0;
    for (const auto& [port, n] : ended) {
      twice += n > 1;
      old_ones += port < first_port;
    }
    EXPECT_EQ(ended.size(), count) << d.proc->log();
    EXPECT_EQ(twice, 0u);
    EXPECT_EQ(old_ones, 0u) << "ended before, sent again";
    EXPECT_EQ(d.stop(), 0);
  }

  Daemon d;
  const std::string work = d.dir.file("cache");
  std::unique_ptr<Tmpfs> fs;  // after d: unmounted before its directory goes
};

// try15l, try15m: work_dir filled up while flows ended and started. flowd went on appending once
// there was room again (after a cut line), and could not write its stop's line with the disk
// still full: the next start sent again the ends the full disk had refused (and could not end the
// flows started meanwhile). The journal is rewritten from memory, in place when there is no room
// for a new file, here at the stop with the disk still full.
TEST_F(FlowJournalDisk, AWorkDirFullAtTheStopLeavesTheJournalExact) {
  write_pipe(d.pipe(), lines("start", 10000, 12000));
  ASSERT_EQ(d.rx4.receive_many(2000).size(), 2000u) << d.proc->log();
  fill();
  write_pipe(d.pipe(), lines("end", 10000, 12000));
  ASSERT_EQ(d.rx4.receive_many(2000).size(), 2000u) << d.proc->log();
  write_pipe(d.pipe(), lines("start", 20000, 20500));
  ASSERT_EQ(d.rx4.receive_many(500).size(), 500u) << d.proc->log();
  const std::string m =
      d.scrape_until("flowd_flow_journal_failures_total{reason=\"write_failed\"}", 1);
  EXPECT_GE(
      metric_value(m, "flowd_flow_journal_failures_total{reason=\"write_failed\"}").value_or(0), 1)
      << m;
  // Stopped with the disk still full; started again once there is room.
  EXPECT_EQ(d.stop(), 0);
  EXPECT_NE(d.proc->log().find("rewritten from memory"), std::string::npos) << d.proc->log();
  std::filesystem::remove(work + "/filler");
  d.start(np_config(d));
  // The 500 left live by the clean stop end now (their connections are closed), and only they.
  const auto ended = ends_by_port(2500, 2s);
  std::size_t old_ones = 0, twice = 0;
  for (const auto& [port, n] : ended) {
    old_ones += port < 20000;
    twice += n > 1;
  }
  EXPECT_EQ(old_ones, 0u) << "ends the full disk refused to journal, sent again\n" << d.proc->log();
  EXPECT_EQ(twice, 0u);
  EXPECT_EQ(ended.size(), 500u) << "the flows started while the disk was full\n" << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// try15m: the rewrite was tried only when a flow was recorded: with no flow after the disk had
// room again, a kill -9 left the next start an outdated journal (here: starts the full disk
// refused, more than the journal's own blocks could take in place, so never ended). The main
// loop tries each second while the file is behind.
TEST_F(FlowJournalDisk, AJournalLeftBehindIsRewrittenWhileFlowdIsIdle) {
  write_pipe(d.pipe(), lines("start", 10000, 11000));
  ASSERT_EQ(d.rx4.receive_many(1000).size(), 1000u) << d.proc->log();
  fill();
  write_pipe(d.pipe(), lines("start", 20000, 23000));
  ASSERT_EQ(d.rx4.receive_many(3000).size(), 3000u) << d.proc->log();
  std::filesystem::remove(work + "/filler");
  EXPECT_TRUE(complete_again()) << d.proc->log();  // no flow from now on
  kill9();
  d.start(np_config(d));
  const auto ended = ends_by_port(4000, 2s);
  EXPECT_EQ(ended.size(), 4000u) << "every flow ends once, those the full disk refused too\n"
                                 << d.proc->log();
  EXPECT_EQ(d.proc->log().find("behind what the previous flowd"), std::string::npos)
      << d.proc->log();
  std::size_t twice = 0;
  for (const auto& [port, n] : ended) twice += n > 1;
  EXPECT_EQ(twice, 0u);
  EXPECT_EQ(d.stop(), 0);
}

// try15o: a kill -9 while the disk is still full leaves the next start an outdated journal (as
// the README says: ends sent again, flows never ended); that start did not say so. It does now.
TEST_F(FlowJournalDisk, AKillWhileTheJournalIsBehindIsSaidByTheNextStart) {
  write_pipe(d.pipe(), lines("start", 10000, 11000));
  ASSERT_EQ(d.rx4.receive_many(1000).size(), 1000u) << d.proc->log();
  fill();
  // More starts than the file's blocks can take in place: it stays behind.
  write_pipe(d.pipe(), lines("start", 20000, 23000));
  ASSERT_EQ(d.rx4.receive_many(3000).size(), 3000u) << d.proc->log();
  d.scrape_until("flowd_flow_journal_failures_total{reason=\"rewrite_failed\"}", 1);
  kill9();
  std::filesystem::remove(work + "/filler");
  d.start(np_config(d));
  // Read at the start, before flowd says it is ready.
  EXPECT_NE(d.proc->log().find("behind what the previous flowd reported"), std::string::npos)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// try15o: with no room for a new file, the rewrite in place emptied the journal first, which freed
// its blocks; another writer on the file system took them before flowd wrote, and the rewrite was
// cut short: the journal lost its reports (2,018 lines became 36). It is now written over without
// freeing a block, then cut to its length. Here a hog takes every block the moment one is free.
TEST_F(FlowJournalDisk, AnInPlaceRewriteLosesNoReportToAnotherWriterTakingFreedBlocks) {
  write_pipe(d.pipe(), lines("start", 10000, 12000));
  ASSERT_EQ(d.rx4.receive_many(2000).size(), 2000u) << d.proc->log();
  const std::string journal = journal_file();
  ASSERT_FALSE(journal.empty());
  fill();
  std::atomic<std::uint64_t> taken{0};
  std::jthread hog([&](std::stop_token stop) {
    UniqueFd f(::open((work + "/hog").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    const std::string block(4096, 'x');
    while (f && !stop.stop_requested())
      if (::write(f.get(), block.data(), block.size()) > 0) taken += block.size();
  });
  // More ends than the last block's slack holds: the append fails, the file is rewritten in place.
  write_pipe(d.pipe(), lines("end", 10000, 10200));
  ASSERT_EQ(d.rx4.receive_many(200).size(), 200u) << d.proc->log();
  EXPECT_TRUE(complete_again()) << d.proc->log();
  expect_rewritten_in_place(journal, 1800);
  EXPECT_FALSE(HasFailure()) << "the hog took " << taken << " bytes";
  // A kill now, a start with room again: each flow left ends once.
  kill9();
  hog.request_stop();
  hog.join();
  std::filesystem::remove(work + "/hog");
  std::filesystem::remove(work + "/filler");
  expect_each_left_ends_once(1800, 10200);
}

// try15n 2b: work_dir's mount went read-only while flowd ran (its file still writable through the
// descriptor it holds), with the disk full: the rewrite in place opened the file again by path,
// which failed, and the journal stayed behind (14,800 ends sent twice, 15,000 flows never ended).
// The rewrite in place goes through the descriptor flowd holds.
TEST_F(FlowJournalDisk, AWorkDirMountedReadOnlyIsRewrittenThroughTheFileFlowdHolds) {
  write_pipe(d.pipe(), lines("start", 10000, 12000));
  ASSERT_EQ(d.rx4.receive_many(2000).size(), 2000u) << d.proc->log();
  const std::string journal = journal_file();
  ASSERT_FALSE(journal.empty());
  fill();
  ReadOnlyBind ro(work);
  ASSERT_TRUE(ro.ok);
  write_pipe(d.pipe(), lines("end", 10000, 10200));
  ASSERT_EQ(d.rx4.receive_many(200).size(), 200u) << d.proc->log();
  EXPECT_TRUE(complete_again()) << d.proc->log();
  expect_rewritten_in_place(journal, 1800);
  kill9();
  ro.release();
  std::filesystem::remove(work + "/filler");
  expect_each_left_ends_once(1800, 10200);
}

// try16a 2: flowd started while work_dir was read-only ran without a journal, saying only the
// lock file's error: the flows the killed flowd left were not ended, and no metric moved. It says
// how many the journal holds, and who ends them, and counts it; the first start that can write
// work_dir ends each once.
TEST_F(FlowJournalDisk, AStartOnAReadOnlyWorkDirSaysWhatTheJournalHoldsAndCountsIt) {
  write_pipe(d.pipe(), lines("start", 10000, 10300));
  ASSERT_EQ(d.rx4.receive_many(300).size(), 300u) << d.proc->log();
  kill9();
  {
    ReadOnlyBind ro(work);
    ASSERT_TRUE(ro.ok);
    d.start(np_config(d));
    const std::string m =
        d.scrape_until("flowd_flow_journal_failures_total{reason=\"unwritable\"}", 1);
    EXPECT_EQ(
        metric_sum(m, "flowd_flow_journal_failures_total{reason=\"unwritable\"}").value_or(-1), 1)
        << m;
    EXPECT_EQ(metric_sum(m, "flowd_flow_journal_bytes").value_or(-1), 0);
    const std::string log = d.proc->log();
    EXPECT_NE(log.find("Read-only file system; the journal holds 300 flows the previous flowd "
                       "did not end: not ended by this start"),
              std::string::npos)
        << log;
    EXPECT_TRUE(ends_by_port(300, 1s).empty()) << "none ended by the read-only start";
    EXPECT_EQ(d.stop(), 0);
  }
  expect_each_left_ends_once(300, 10000);
}

}  // namespace
}  // namespace flowd::test
