// SPDX-License-Identifier: Apache-2.0
// The named pipe against a local user who can write its directory, and across reloads and stops
// (issue 13): no link is followed, no foreign pipe adopted, a writer's leftover file does not keep
// flowd from starting, and no line already written is lost at a reload or at SIGTERM.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "daemon_fixture.hpp"
#include "harness.hpp"

namespace flowd::test {
namespace {

using namespace std::chrono_literals;

std::string start_line(int port) {
  return "start tcp 127.0.0.1 " + std::to_string(port) + " 127.0.0.1 5777 2 9\n";
}

// Waits up to 2 s for a named pipe at `path` (flowd makes it again after a removal); `st` is its
// lstat().
bool wait_for_fifo(const std::string& path, struct stat& st) {
  for (int i = 0; i < 200; ++i) {
    if (::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(NamedPipe, ASymbolicLinkAtThePathIsRefusedAndItsTargetUntouched) {
  Daemon d;
  d.dir.write("secret", "root's file\n");
  ASSERT_EQ(::chmod(d.dir.file("secret").c_str(), 0600), 0);
  ASSERT_EQ(::symlink(d.dir.file("secret").c_str(), d.pipe().c_str()), 0);
  d.dir.write("flowd.cfg", d.config());
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(5s), 1);
  EXPECT_NE(p.log().find("is a symbolic link, not a named pipe"), std::string::npos) << p.log();
  EXPECT_NE(p.log().find("rm " + d.pipe()), std::string::npos) << "the message says what to remove";
  EXPECT_EQ(p.log().find("root's file"), std::string::npos)
      << "the target's content is never logged";
  struct stat st {};
  ASSERT_EQ(::stat(d.dir.file("secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "mode of the link's target changed";
  EXPECT_EQ(read_file(d.dir.file("secret")), "root's file\n");
}

TEST(NamedPipe, AnotherUsersPipeIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root to make a pipe owned by another user";
  Daemon d;
  ASSERT_EQ(::mkfifo(d.pipe().c_str(), 0600), 0);
  ASSERT_EQ(::chown(d.pipe().c_str(), 65534, 65534), 0);
  d.dir.write("flowd.cfg", d.config());
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(5s), 1);
  EXPECT_NE(p.log().find("owned by uid 65534"), std::string::npos) << p.log();
  struct stat st {};
  ASSERT_EQ(::lstat(d.pipe().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the foreign pipe was chmodded";
  EXPECT_EQ(st.st_uid, 65534u);
}

TEST(NamedPipe, ItsOwnPipeIsReusedWithTheConfiguredMode) {
  Daemon d;
  ASSERT_EQ(::mkfifo(d.pipe().c_str(), 0600), 0);
  d.start(d.config());
  EXPECT_NE(d.proc->log().find("reusing the existing named pipe"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::lstat(d.pipe().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  write_pipe(d.pipe(), start_line(2000));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// A writer's `echo … > PIPE` while no pipe was there made a regular file, and every later start
// failed.
TEST(NamedPipe, AWritersLeftoverFileIsMovedAsideAndAPipeMade) {
  Daemon d;
  d.dir.write("flowd.np", start_line(1) + "\n" + start_line(2));
  d.start(d.config());
  EXPECT_NE(d.proc->log().find("holding 2 line(s)"), std::string::npos) << d.proc->log();
  EXPECT_EQ(read_file(d.pipe() + ".leftover"), start_line(1) + "\n" + start_line(2));
  struct stat st {};
  ASSERT_EQ(::lstat(d.pipe().c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  write_pipe(d.pipe(), start_line(2001));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
  // A second leftover does not overwrite the first.
  d.dir.write("flowd.np", start_line(3));
  FlowdProcess again({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log2"));
  struct stat pipe_st {};
  ASSERT_TRUE(wait_for_fifo(d.pipe(), pipe_st)) << again.log();
  EXPECT_EQ(read_file(d.pipe() + ".leftover"), start_line(1) + "\n" + start_line(2));
  EXPECT_EQ(read_file(d.pipe() + ".leftover.1"), start_line(3));
  again.signal(SIGTERM);
  EXPECT_EQ(again.wait(5s), 0) << again.log();

  // An empty file (`: > PIPE`, `touch PIPE`) is a leftover too; anything else is refused.
  Daemon e;
  e.dir.write("flowd.np", "");
  e.start(e.config());
  EXPECT_EQ(e.stop(), 0);
}

// End to end; the unit test NpApiPlugin.LinesInThePipeAtStopAreRead makes the race deterministic
// (here flowd usually reads the burst before the signal arrives).
TEST(NamedPipe, ALineWrittenBeforeSigtermIsReadNotDropped) {
  Daemon d;
  d.start(d.config());
  constexpr int kLines = 400;
  std::string burst;
  for (int i = 0; i < kLines; ++i) burst += start_line(10000 + i);
  ASSERT_LT(burst.size(), 65536u) << "must fit the pipe's buffer in one write";
  write_pipe(d.pipe(), burst);
  d.proc->signal(SIGTERM);  // at once: most lines are still in the pipe
  auto got = d.rx4.receive_many(kLines, 3s);
  EXPECT_EQ(d.proc->wait(5s), 0);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kLines)) << d.proc->log();
}

// A reload that restarts np_api kept the pipe away for a moment (writers made regular files) and
// dropped what it held. Now the pipe stays, open, and the successor reads every line.
TEST(NamedPipe, AReloadThatRestartsNpApiKeepsThePipeAndEveryLine) {
  Daemon d;
  d.start(d.config());
  std::atomic<bool> done{false};
  std::atomic<int> written{0}, missing{0}, not_fifo{0};
  std::thread writer([&] {
    for (int i = 0; !done || i < 300; ++i) {
      struct stat st {};
      if (::lstat(d.pipe().c_str(), &st) != 0) {
        ++missing;
      } else if (!S_ISFIFO(st.st_mode)) {
        ++not_fifo;
      } else {
        // What `echo … > PIPE` does, minus O_CREAT (so a missing pipe is seen, not replaced by a
        // file).
        int fd = ::open(d.pipe().c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
          ++missing;
        } else {
          auto line = start_line(20000 + i % 40000);
          if (::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) ++written;
          ::close(fd);
        }
      }
      std::this_thread::sleep_for(1ms);
      if (i > 5000) break;
    }
  });
  std::this_thread::sleep_for(150ms);
  std::string cfg = d.config();
  cfg.replace(cfg.find("[plugin.np_api]\n") + 16, 0, "max_line_length = 4000\n");
  d.dir.write("flowd.cfg", cfg);
  d.proc->signal(SIGHUP);
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
  std::this_thread::sleep_for(150ms);
  done = true;
  writer.join();
  EXPECT_NE(d.proc->log().find("reloaded"), std::string::npos) << d.proc->log();
  EXPECT_NE(d.proc->log().find("kept open across the reload"), std::string::npos) << d.proc->log();
  EXPECT_EQ(missing.load(), 0) << "the pipe was missing while np_api restarted";
  EXPECT_EQ(not_fifo.load(), 0);
  auto m = d.scrape_until("flowd_np_api_lines_total", written.load());
  EXPECT_EQ(metric_value(m, "flowd_np_api_lines_total").value_or(-1), written.load())
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
  struct stat st {};
  EXPECT_NE(::lstat(d.pipe().c_str(), &st), 0) << "the pipe is removed when flowd stops";
}

// A second flowd on the same pipe took half the lines and removed the pipe when it stopped.
TEST(NamedPipe, ASecondFlowdOnThePipeIsRefusedAndTheFirstKeepsIt) {
  Daemon d;
  d.start(d.config());
  Daemon other;  // its own ports, the first one's pipe
  std::string cfg = other.config();
  cfg.replace(cfg.find(other.pipe()), other.pipe().size(), d.pipe());
  other.dir.write("flowd.cfg", cfg);
  FlowdProcess p({"-c", other.dir.file("flowd.cfg")}, other.dir.file("log"));
  EXPECT_EQ(p.wait(5s), 1);
  EXPECT_NE(p.log().find("is read by another process"), std::string::npos) << p.log();
  struct stat st {};
  ASSERT_EQ(::lstat(d.pipe().c_str(), &st), 0) << "the refused flowd removed the first one's pipe";
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  write_pipe(d.pipe(), start_line(2100));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// `rm PIPE` while flowd ran: writers then made a regular file nobody read, silently.
TEST(NamedPipe, APipeRemovedWhileFlowdRunsIsMadeAgain) {
  Daemon d;
  d.start(d.config());
  struct stat before {};
  ASSERT_EQ(::lstat(d.pipe().c_str(), &before), 0);
  ASSERT_EQ(::unlink(d.pipe().c_str()), 0);
  struct stat st {};
  ASSERT_TRUE(wait_for_fifo(d.pipe(), st)) << d.proc->log();
  EXPECT_NE(st.st_ino, before.st_ino);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  write_pipe(d.pipe(), start_line(2200));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_NE(d.proc->log().find("was removed or replaced while flowd ran; made a new one"),
            std::string::npos)
      << d.proc->log();
  // Renamed away: the same.
  ASSERT_EQ(::rename(d.pipe().c_str(), (d.pipe() + ".old").c_str()), 0);
  ASSERT_TRUE(wait_for_fifo(d.pipe(), st)) << d.proc->log();
  write_pipe(d.pipe(), start_line(2201));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
  EXPECT_NE(::lstat(d.pipe().c_str(), &st), 0) << "removed at stop";
}

// A directory of the path that another user replaced by a link to a directory of root's: flowd made
// its 0666 pipe there.
TEST(NamedPipe, ADirectoryLinkAnotherUserMadeIsNotFollowed) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root to make a link owned by another user";
  Daemon d;
  ASSERT_EQ(::mkdir(d.dir.file("rootdir").c_str(), 0700), 0);
  ASSERT_EQ(::symlink(d.dir.file("rootdir").c_str(), d.dir.file("sub").c_str()), 0);
  ASSERT_EQ(::lchown(d.dir.file("sub").c_str(), 65534, 65534), 0);
  std::string cfg = d.config();
  cfg.replace(cfg.find(d.pipe()), d.pipe().size(), d.dir.file("sub/flowd.np"));
  d.dir.write("flowd.cfg", cfg);
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(5s), 1);
  EXPECT_NE(p.log().find("is a symbolic link owned by uid 65534"), std::string::npos) << p.log();
  struct stat st {};
  EXPECT_NE(::lstat(d.dir.file("rootdir/flowd.np").c_str(), &st), 0) << "a pipe was made there";
  // The same link made by root is followed (as /var/run -> /run is).
  ASSERT_EQ(::lchown(d.dir.file("sub").c_str(), 0, 0), 0);
  d.start(cfg);
  EXPECT_EQ(::lstat(d.dir.file("rootdir/flowd.np").c_str(), &st), 0);
  EXPECT_EQ(d.stop(), 0);
}

// A user who can write the directory moved a link over the pipe; a reload that restarted np_api
// then ended flowd ("the previous configuration does not start again either").
TEST(NamedPipe, ALinkMovedOverThePipeCostsNeitherAReloadNorTheProcess) {
  Daemon d;
  d.dir.write("secret", "root's file\n");
  d.start(d.config());
  ASSERT_EQ(::symlink(d.dir.file("secret").c_str(), d.dir.file("evil").c_str()), 0);
  ASSERT_EQ(::rename(d.dir.file("evil").c_str(), d.pipe().c_str()), 0);
  std::string cfg = d.config();
  cfg.replace(cfg.find("[plugin.np_api]\n") + 16, 0, "max_line_length = 4000\n");
  d.dir.write("flowd.cfg", cfg);
  d.proc->signal(SIGHUP);
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
  EXPECT_TRUE(d.proc->running()) << d.proc->log();
  EXPECT_NE(d.proc->log().find("still reading the pipe flowd had open"), std::string::npos)
      << d.proc->log();
  EXPECT_EQ(read_file(d.dir.file("secret")), "root's file\n");
  // The link goes: the pipe is made again and lines flow.
  ASSERT_EQ(::unlink(d.pipe().c_str()), 0);
  struct stat st {};
  ASSERT_TRUE(wait_for_fifo(d.pipe(), st)) << d.proc->log();
  write_pipe(d.pipe(), start_line(2300));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// The pipe's directory did not exist at start: flowd made it, and must still watch it.
TEST(NamedPipe, APipeInADirectoryFlowdMadeIsMadeAgainWhenRemoved) {
  Daemon d;
  std::string cfg = d.config();
  const std::string path = d.dir.file("run/sub/flowd.np");
  cfg.replace(cfg.find(d.pipe()), d.pipe().size(), path);
  d.start(cfg);
  EXPECT_EQ(d.proc->log().find("cannot watch"), std::string::npos) << d.proc->log();
  ASSERT_EQ(::unlink(path.c_str()), 0);
  struct stat st {};
  ASSERT_TRUE(wait_for_fifo(path, st)) << d.proc->log();
  write_pipe(path, start_line(2400));
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
