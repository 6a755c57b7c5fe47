// SPDX-License-Identifier: Apache-2.0
// privileged: when stderr is the journal stream, flowd logs through the journal's native protocol
// with a FLOWD_COMPONENT field. The test plays journald on /run/systemd/journal/socket.
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

TEST(Journal, NativeProtocolWithComponentField) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root to create " << kJournalSocket;
  if (std::filesystem::exists(kJournalSocket))
    GTEST_SKIP() << kJournalSocket << " exists (a real journald runs here); not replacing it";
  bool made_dir = !std::filesystem::exists("/run/systemd/journal");
  std::filesystem::create_directories("/run/systemd/journal");
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", kJournalSocket);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);

  // Read while flowd runs, as journald does: a unix datagram socket queues only a few messages.
  std::vector<std::string> entries;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    char buf[8192];
    while (!done) {
      pollfd pf{fd, POLLIN, 0};
      if (poll(&pf, 1, 100) <= 0) continue;
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) entries.emplace_back(buf, static_cast<std::size_t>(n));
    }
  });

  Daemon d;
  std::string log = d.dir.file("stderr");
  std::ofstream(log).flush();
  struct stat st {};
  ASSERT_EQ(stat(log.c_str(), &st), 0);
  std::string stream =
      "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  d.dir.write("flowd.cfg", d.config());
  NotifySocket notify(d.dir.file("notify"));
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, log, notify.path(), {stream});
  EXPECT_TRUE(notify.wait_for("READY=1"));
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(5s), 0);

  done = true;
  reader.join();
  close(fd);
  unlink(kJournalSocket);
  if (made_dir) std::filesystem::remove_all("/run/systemd/journal");

  bool ready = false, np_api = false;
  for (const auto& e : entries) {
    EXPECT_NE(e.find("SYSLOG_IDENTIFIER=flowd\n"), std::string::npos) << e;
    if (e.find("FLOWD_COMPONENT=core\n") != std::string::npos &&
        e.find("MESSAGE=ready: ") != std::string::npos &&
        e.find("PRIORITY=6\n") != std::string::npos)
      ready = true;
    if (e.find("FLOWD_COMPONENT=plugin.np_api\n") != std::string::npos) np_api = true;
  }
  EXPECT_TRUE(ready) << entries.size()
                     << " journal entries, none the INFO 'ready' line of component core";
  EXPECT_TRUE(np_api) << "no entry from plugin.np_api";
  EXPECT_EQ(p.log(), "") << "with the journal as stderr, nothing is written to stderr";
}

TEST(Unprivileged, FlowdWithoutEbpfRunsAsNobody) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root to switch to user nobody";
  Daemon d;
  chmod(d.dir.path().c_str(), 0777);  // nobody creates the pipe here
  d.dir.write("flowd.cfg", d.config());
  NotifySocket notify(d.dir.file("notify"));
  chmod(notify.path().c_str(), 0666);  // sd_notify() from nobody must be allowed to send
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"), notify.path(), {},
                 {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"});
  ASSERT_TRUE(notify.wait_for("READY=1")) << p.log();
  struct stat st {};
  ASSERT_EQ(stat(d.pipe().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u) << "flowd ran as nobody";
  write_pipe(d.pipe(), "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n");
  EXPECT_TRUE(d.rx4.receive()) << p.log();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(5s), 0);
}

TEST(PipeOwnership, GroupIsApplied) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: chown to another group needs root";
  struct group* g = getgrnam("daemon");
  if (!g) GTEST_SKIP() << "no group 'daemon' on this host";
  Daemon d;
  std::string cfg = d.config();
  cfg.replace(cfg.find("[plugin.np_api]\n") + 16, 0, "group = daemon\nmode = 0660\n");
  d.start(cfg);
  struct stat st {};
  ASSERT_EQ(::stat(d.pipe().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, g->gr_gid);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
