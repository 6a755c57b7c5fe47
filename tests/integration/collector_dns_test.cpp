// SPDX-License-Identifier: Apache-2.0
// Issue 14: a collector's name is looked up again every collector_resolve_interval, so a DNS change
// reaches a running flowd. The change is real: flowd runs in a mount namespace of its own whose
// /etc/hosts is a file this test rewrites (glibc's "files" source reads it on every lookup).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

constexpr const char* kName = "flowd-collector.test";

// Rewrites `path` in place (same inode: the bind mount in flowd's namespace shows the new text).
void write_in_place(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::string hosts_naming(const std::string& address) {
  return "127.0.0.1 localhost\n" + address + " " + kName + "\n";
}

TEST(CollectorDns, ANameThatMovesTakesTheFirefliesWithItWithoutARestart) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for a mount namespace (unshare -m)";
  if (access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/unshare";
  Daemon d;
  // The named collector, at its old and its new address (same port), and a second collector.
  UdpReceiver old_home(false, 0, "127.0.0.2");
  UdpReceiver new_home(false, old_home.port(), "127.0.0.3");
  UdpReceiver second;
  const std::string hosts = d.dir.file("hosts");
  write_in_place(hosts, hosts_naming("127.0.0.2"));
  const std::string named = std::string(kName) + ":" + std::to_string(old_home.port());
  const std::string numeric = "127.0.0.1:" + std::to_string(second.port());
  // flowd runs in its own mount namespace with `hosts` bind-mounted over /etc/hosts; unshare execs
  // sh, which execs flowd, so the pid the test signals is flowd's.
  d.start(d.config("collector = " + named + ", " + numeric + "\ncollector_resolve_interval = 1s\n"),
          "flowd.cfg", {},
          {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
           "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts});

  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  ASSERT_TRUE(old_home.receive()) << "the name's first address: " << d.proc->log();
  ASSERT_TRUE(second.receive()) << d.proc->log();
  ASSERT_TRUE(d.rx4.receive()) << "the flow's peer";

  write_in_place(hosts, hosts_naming("127.0.0.3"));
  // Within a few intervals the next fireflies go to the new address; the numeric one is unmoved.
  bool moved = false;
  int sent = 1;
  for (int i = 0; i < 50 && !moved; ++i) {
    write_pipe(d.pipe(), "end tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
    ++sent;
    moved = new_home.receive(200ms).has_value();
  }
  ASSERT_TRUE(moved) << "fireflies never reached the name's new address; log:\n" << d.proc->log();
  while (old_home.receive(100ms)) {
  }
  write_pipe(d.pipe(), "start tcp 127.0.0.1 3 127.0.0.1 4 2 9\n");
  ++sent;
  EXPECT_TRUE(new_home.receive()) << "the next firefly goes to the new address";
  EXPECT_FALSE(old_home.receive(300ms)) << "and not to the old one";
  EXPECT_EQ(second.receive_many(static_cast<std::size_t>(sent - 1)).size(),
            static_cast<std::size_t>(sent - 1))
      << "the second collector got every firefly";

  std::string m =
      d.scrape_until("flowd_collector_fireflies_sent_total{collector=\"" + numeric + "\"}", sent);
  EXPECT_EQ(metric_value(m, "flowd_collector_fireflies_sent_total{collector=\"" + numeric + "\"}"),
            sent);
  EXPECT_EQ(metric_value(m, "flowd_collector_fireflies_sent_total{collector=\"" + named + "\"}"),
            sent);
  EXPECT_EQ(metric_value(m, "flowd_collector_resolve_failures_total{collector=\"" + named + "\"}"),
            0);
  const std::string log = d.proc->log();
  EXPECT_NE(log.find("collector " + named + ": sending to 127.0.0.3:" +
                     std::to_string(old_home.port()) + " (was 127.0.0.2:"),
            std::string::npos)
      << log;
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
