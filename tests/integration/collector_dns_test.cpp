// SPDX-License-Identifier: Apache-2.0
// Issue 14: a collector's name is looked up again every collector_resolve_interval, so a DNS change
// reaches a running flowd. The change is real: flowd runs in a mount namespace of its own whose
// /etc/hosts is a file this test rewrites (glibc's "files" source reads it on every lookup).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

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
  // The flow ends and starts again, a firefly each (a repeated end is dropped: the flow is over).
  bool moved = false;
  int sent = 1;
  for (int i = 0; i < 50 && !moved; ++i) {
    write_pipe(d.pipe(),
               std::string(i % 2 ? "start" : "end") + " tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
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

// Runs the daemon in a mount namespace of its own where `binds` (file -> path) are bind-mounted
// first (unshare execs sh, which execs flowd: the pid the test signals is flowd's).
void start_with_binds(Daemon& d, const std::string& config,
                      const std::vector<std::pair<std::string, std::string>>& binds) {
  std::string script;
  std::vector<std::string> prefix{"/usr/bin/unshare", "--mount", "--propagation",
                                  "private",          "/bin/sh", "-c"};
  for (std::size_t i = 0; i < binds.size(); ++i)
    script += "mount --bind \"$" + std::to_string(i) + "\" " + binds[i].second + " && ";
  // sh -c SCRIPT A B C...: $0 is A, "$@" is B C...: the files after the first are shifted away.
  if (binds.size() > 1) script += "shift " + std::to_string(binds.size() - 1) + " && ";
  script += "exec \"$@\"";
  prefix.push_back(script);
  for (const auto& b : binds) prefix.push_back(b.first);
  d.start(config, "flowd.cfg", {}, prefix);
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// Issue 14 (found by a fresh user): two names of one host (here one of them as the IPv4-mapped
// IPv6 address of the other) are one collector: each firefly goes there once, and the log says so.
TEST(CollectorDns, TwoNamesOfOneAddressGetEachFireflyOnce) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for a mount namespace (unshare -m)";
  if (access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/unshare";
  Daemon d;
  UdpReceiver collector(false, 0, "127.0.0.2");
  const std::string hosts = d.dir.file("hosts");
  write_in_place(hosts,
                 "127.0.0.1 localhost\n127.0.0.2 one.flowd.test\n::ffff:127.0.0.2 "
                 "two.flowd.test\n");
  const std::string port = std::to_string(collector.port());
  start_with_binds(
      d, d.config("collector = one.flowd.test:" + port + ", two.flowd.test:" + port + "\n"),
      {{hosts, "/etc/hosts"}});
  write_pipe(d.pipe(),
             "start tcp 127.0.0.1 1 127.0.0.1 2 2 9\nend tcp 127.0.0.1 1 127.0.0.1 2 2 9\n");
  auto got = collector.receive_many(4, 1s);
  EXPECT_EQ(got.size(), 2u) << "each firefly once, not once per name; log:\n" << d.proc->log();
  std::string m = d.scrape_until(
      "flowd_collector_fireflies_sent_total{collector=\"one.flowd.test:" + port + "\"}", 2);
  EXPECT_EQ(metric_value(m, "flowd_collector_fireflies_sent_total{collector=\"one.flowd.test:" +
                                port + "\"}"),
            2);
  EXPECT_EQ(metric_value(
                m, "flowd_collector_send_errors_total{collector=\"two.flowd.test:" + port + "\"}"),
            0);
  const std::string log = d.proc->log();
  EXPECT_NE(log.find("collector two.flowd.test:" + port + ": sending to 127.0.0.2:" + port +
                     "; the same address as collector one.flowd.test:" + port),
            std::string::npos)
      << log;
  EXPECT_EQ(d.stop(), 0);
}

// Issue 14: a name that does not resolve is warned about once, not at every lookup.
TEST(CollectorDns, AnUnresolvableNameIsWarnedAboutOnce) {
  if (geteuid() != 0) GTEST_SKIP() << "privileged: needs root for a mount namespace (unshare -m)";
  if (access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/unshare";
  Daemon d;
  const std::string hosts = d.dir.file("hosts"), resolv = d.dir.file("resolv.conf");
  write_in_place(hosts, "127.0.0.1 localhost\n");
  // No name server answers: every lookup fails at once.
  write_in_place(resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
  const std::string named = "nosuch.flowd.test:10600";
  start_with_binds(d, d.config("collector = " + named + "\ncollector_resolve_interval = 1s\n"),
                   {{hosts, "/etc/hosts"}, {resolv, "/etc/resolv.conf"}});
  const std::string failures =
      "flowd_collector_resolve_failures_total{collector=\"" + named + "\"}";
  std::string m = d.scrape_until(failures, 4, 10s);
  ASSERT_GE(metric_value(m, failures).value_or(0), 4) << m << d.proc->log();
  EXPECT_EQ(count_of(d.proc->log(), "collector " + named + ": cannot resolve"), 1u)
      << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
