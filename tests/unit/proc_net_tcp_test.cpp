// SPDX-License-Identifier: Apache-2.0
// /proc/net/tcp{,6} lines as the kernel prints them, and the bad ones we must survive.
#include "plugins/netstat/proc_net_tcp.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "netlink/sock_diag.hpp"

namespace flowd::netstat {
namespace {

TEST(ProcNetTcp, Ipv4Line) {
  scanner::Connection c;
  ASSERT_EQ(parse_proc_net_tcp_line(
                "   1: 0100007F:A8F2 0200A8C0:01BB 01 00000000:00000000 00:00000000 00000000  "
                "1000        0 123456 1 0000000000000000 20 4 30 10 -1",
                c),
            ProcLineError::kNone);
  EXPECT_EQ(c.local.to_string(), "127.0.0.1");
  EXPECT_EQ(c.local_port, 0xA8F2);
  EXPECT_EQ(c.remote.to_string(), "192.168.0.2");
  EXPECT_EQ(c.remote_port, 443);
  EXPECT_EQ(c.state, netlink::kTcpEstablished);
  EXPECT_EQ(c.inode, 123456u);
}

TEST(ProcNetTcp, Ipv6AndMappedLines) {
  scanner::Connection c;
  ASSERT_EQ(parse_proc_net_tcp_line(
                "   0: 000000FD000000000000000001000000:1F90 000000FD000000000000000002000000:D431 "
                "06 00000000:00000000 03:00000DC5 00000000     0        0 0 3 0000000000000000",
                c),
            ProcLineError::kNone);
  EXPECT_EQ(c.local.to_string(), "fd00::1");
  EXPECT_EQ(c.remote.to_string(), "fd00::2");
  EXPECT_EQ(c.local_port, 8080);
  EXPECT_EQ(c.state, netlink::kTcpTimeWait);
  EXPECT_EQ(c.inode, 0u);
  ASSERT_EQ(parse_proc_net_tcp_line(
                "   2: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:C000 "
                "01 00000000:00000000 00:00000000 00000000     0        0 99 1",
                c),
            ProcLineError::kNone);
  EXPECT_EQ(c.local.family, AF_INET);
  EXPECT_EQ(c.remote.to_string(), "127.0.0.2");
}

TEST(ProcNetTcp, BadLinesAreRejectedWithAReason) {
  scanner::Connection c;
  struct Case {
    const char* line;
    ProcLineError reason;
  } cases[] = {
      {"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
       "inode",
       ProcLineError::kFields},
      {"", ProcLineError::kFields},
      {"   1: 0100007F:A8F2", ProcLineError::kFields},
      {"   1: 0100007G:A8F2 0200A8C0:01BB 01 0:0 0:0 0 0 0 5", ProcLineError::kAddress},
      {"   1: 0100007F 0200A8C0:01BB 01 0:0 0:0 0 0 0 5", ProcLineError::kAddress},
      {"   1: 0100007F:A8F2 0200A8C0:1BB 01 0:0 0:0 0 0 0 5", ProcLineError::kPort},
      {"   1: 0100007F:A8F2 0200A8C0:01BB 00 0:0 0:0 0 0 0 5", ProcLineError::kState},
      {"   1: 0100007F:A8F2 0200A8C0:01BB 0D 0:0 0:0 0 0 0 5", ProcLineError::kState},
      {"   1: 0100007F:A8F2 0200A8C0:01BB 01 0:0 0:0 0 0 0 x5", ProcLineError::kInode},
      {"   1: 0100007F:A8F2 0200A8C0:01BB 01 0:0 0:0 0 0 0 99999999999", ProcLineError::kInode},
  };
  for (const auto& k : cases) EXPECT_EQ(parse_proc_net_tcp_line(k.line, c), k.reason) << k.line;
}

}  // namespace
}  // namespace flowd::netstat
