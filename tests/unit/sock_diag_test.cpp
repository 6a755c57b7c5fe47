// SPDX-License-Identifier: Apache-2.0
// sock_diag against real loopback connections (no root needed), and the message parser on bad
// bytes.
#include "netlink/sock_diag.hpp"

#include "common/flow_table.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <unordered_map>
#include <vector>

namespace flowd::netlink {
namespace {

// A connected pair over loopback; closes both ends.
struct Pair {
  int listener = -1, client = -1, server = -1;
  std::uint16_t server_port = 0, client_port = 0;
  explicit Pair(int family) {
    listener = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(sockaddr_in);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_loopback;
      len = sizeof(sockaddr_in6);
    }
    EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&ss), len), 0);
    EXPECT_EQ(::listen(listener, 4), 0);
    EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&ss), &len), 0);
    client = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&ss), len), 0);
    server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    server_port = port_of(listener);
    client_port = port_of(client);
  }
  static std::uint16_t port_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                         : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  ~Pair() {
    for (int fd : {listener, client, server})
      if (fd >= 0) ::close(fd);
  }
};

struct Found {
  SockEntry entry;
  TcpDetails details;
  bool has_details = false;
};

std::vector<Found> find(SockDiag& diag, const DumpRequest& req, std::uint16_t local_port) {
  std::vector<Found> out;
  std::string error;
  EXPECT_TRUE(diag.dump(
      req,
      [&](const SockEntry& e, const TcpDetails* d) {
        if (e.local_port != local_port) return;
        Found f{e, d ? *d : TcpDetails{}, d != nullptr};
        out.push_back(f);
      },
      error))
      << error;
  return out;
}

class SockDiagLoopback : public ::testing::TestWithParam<int> {};

TEST_P(SockDiagLoopback, SeesTheConnectionWithTheKernelsTcpInfo) {
  int family = GetParam();
  Pair p(family);
  ASSERT_GE(p.server, 0);
  const char payload[] = "hello sock_diag";
  ASSERT_EQ(::send(p.client, payload, sizeof payload, 0), static_cast<ssize_t>(sizeof payload));
  char buf[64];
  ASSERT_EQ(::recv(p.server, buf, sizeof payload, MSG_WAITALL),
            static_cast<ssize_t>(sizeof payload));

  SockDiag diag;
  DumpRequest req;
  req.details = true;
  auto found = find(diag, req, p.client_port);
  ASSERT_EQ(found.size(), 1u);
  const auto& f = found[0];
  EXPECT_EQ(f.entry.local.family, family);
  EXPECT_EQ(f.entry.remote_port, p.server_port);
  EXPECT_EQ(f.entry.state, kTcpEstablished);
  EXPECT_NE(f.entry.inode, 0u);
  ASSERT_TRUE(f.has_details);
  EXPECT_GT(f.details.info_len, offsetof(tcp_info, tcpi_bytes_received));
  EXPECT_GT(std::strlen(f.details.congestion), 0u);
  EXPECT_TRUE(f.details.has_meminfo);
  EXPECT_TRUE(f.details.has_skmem);

  tcp_info own{};
  socklen_t len = sizeof own;
  ASSERT_EQ(::getsockopt(p.client, IPPROTO_TCP, TCP_INFO, &own, &len), 0);
  EXPECT_EQ(f.details.info.tcpi_state, own.tcpi_state);
  EXPECT_EQ(f.details.info.tcpi_snd_mss, own.tcpi_snd_mss);
  EXPECT_EQ(f.details.info.tcpi_snd_cwnd, own.tcpi_snd_cwnd);
  EXPECT_EQ(f.details.info.tcpi_bytes_acked, own.tcpi_bytes_acked);
  EXPECT_EQ(f.details.info.tcpi_bytes_acked, sizeof payload + 1)
      << "the SYN counts as one byte acked";
  char cong[16] = {};
  len = sizeof cong;
  ASSERT_EQ(::getsockopt(p.client, IPPROTO_TCP, TCP_CONGESTION, cong, &len), 0);
  EXPECT_STREQ(f.details.congestion, cong);

  // Without details: same socket, no extensions; the state filter drops it when excluded.
  auto plain = find(diag, DumpRequest{}, p.client_port);
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_FALSE(plain[0].has_details);
  DumpRequest listen_only;
  listen_only.states = 1u << kTcpListen;
  EXPECT_TRUE(find(diag, listen_only, p.client_port).empty());
  EXPECT_EQ(find(diag, listen_only, p.server_port).size(), 1u);
  EXPECT_GE(diag.last_count(), 1u);
  EXPECT_EQ(diag.malformed(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Families, SockDiagLoopback, ::testing::Values(AF_INET, AF_INET6));

TEST(SockDiag, ClosingConnectionShowsAClosingState) {
  Pair p(AF_INET);
  ::shutdown(p.client, SHUT_WR);
  char c;
  ASSERT_EQ(::recv(p.server, &c, 1, 0), 0);
  SockDiag diag;
  auto found = find(diag, DumpRequest{}, p.client_port);
  ASSERT_EQ(found.size(), 1u);
  // FIN-WAIT-1 until the peer's ACK of our FIN is processed, then FIN-WAIT-2.
  auto state = found[0].entry.state;
  EXPECT_TRUE(state == kTcpFinWait1 || state == kTcpFinWait2) << tcp_state_name(state);
  EXPECT_TRUE(is_closing_state(state));
}

TEST(SockDiag, LookupFindsBothEndsAndMappedIpv4OnDualStackSockets) {
  // A dual-stack IPv6 listener accepting an IPv4 client: the accepted socket is AF_INET6 with
  // IPv4-mapped addresses; flowd reports and finds it as IPv4.
  int listener = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int zero = 0;
  ::setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  std::uint16_t port = Pair::port_of(listener);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  std::uint16_t client_port = Pair::port_of(client);
  auto lo = *IpAddress::parse("127.0.0.1");

  SockDiag diag;
  SockEntry e;
  TcpDetails d;
  // The server's end lives on the AF_INET6 socket.
  ASSERT_TRUE(diag.lookup(lo, port, lo, client_port, e, d));
  EXPECT_EQ(e.local.to_string(), "127.0.0.1");
  EXPECT_EQ(e.local_port, port);
  EXPECT_EQ(e.remote_port, client_port);
  EXPECT_GT(d.info_len, 0u);
  // The client's end is a plain AF_INET socket.
  ASSERT_TRUE(diag.lookup(lo, client_port, lo, port, e, d));
  EXPECT_EQ(e.local_port, client_port);
  EXPECT_FALSE(diag.lookup(lo, client_port, lo, static_cast<std::uint16_t>(port + 1), e, d));

  DumpRequest no_listeners;
  no_listeners.states = ~(1u << kTcpListen);
  auto found = find(diag, no_listeners, port);
  ASSERT_EQ(found.size(), 1u) << "only the accepted socket, not the listener";
  EXPECT_EQ(found[0].entry.remote.family, AF_INET);
  for (int fd : {listener, client, server}) ::close(fd);
}

// A message as the kernel would send it, built by hand.
std::vector<std::uint8_t> message(std::size_t attr_payload, std::uint16_t attr_len_override = 0) {
  std::size_t len = NLMSG_LENGTH(sizeof(inet_diag_msg)) + NLA_HDRLEN + attr_payload;
  std::vector<std::uint8_t> b(NLMSG_ALIGN(len) + 64);
  auto* nlh = reinterpret_cast<nlmsghdr*>(b.data());
  nlh->nlmsg_len = static_cast<std::uint32_t>(len);
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  auto* msg = reinterpret_cast<inet_diag_msg*>(b.data() + NLMSG_HDRLEN);
  msg->idiag_family = AF_INET6;
  msg->idiag_state = kTcpEstablished;
  msg->id.idiag_sport = htons(1094);
  msg->id.idiag_src[0] = 0;
  msg->id.idiag_src[2] = htonl(0xffff);
  msg->id.idiag_src[3] = htonl(0xc0000201);
  auto* attr = reinterpret_cast<nlattr*>(b.data() + NLMSG_LENGTH(sizeof(inet_diag_msg)));
  attr->nla_type = INET_DIAG_INFO;
  attr->nla_len =
      attr_len_override ? attr_len_override : static_cast<std::uint16_t>(NLA_HDRLEN + attr_payload);
  return b;
}

TEST(ParseDiagMessage, MappedAddressesAndOversizedTcpInfo) {
  auto b = message(sizeof(tcp_info) + 40);  // a newer kernel's longer tcp_info
  SockEntry e;
  TcpDetails d;
  std::string error;
  ASSERT_TRUE(parse_diag_message(reinterpret_cast<nlmsghdr*>(b.data()), b.size(), e, &d, error))
      << error;
  EXPECT_EQ(e.local.to_string(), "192.0.2.1");
  EXPECT_EQ(e.local_port, 1094);
  EXPECT_EQ(d.info_len, sizeof(tcp_info));
}

TEST(ParseDiagMessage, RejectsTruncatedInput) {
  SockEntry e;
  TcpDetails d;
  std::string error;
  auto b = message(8, 200);  // attribute claims more than the message holds
  EXPECT_FALSE(parse_diag_message(reinterpret_cast<nlmsghdr*>(b.data()), b.size(), e, &d, error));
  EXPECT_EQ(error, "malformed attribute");
  b = message(8);
  EXPECT_FALSE(parse_diag_message(reinterpret_cast<nlmsghdr*>(b.data()), 20, e, &d, error));
  reinterpret_cast<nlmsghdr*>(b.data())->nlmsg_len = NLMSG_HDRLEN + 4;
  EXPECT_FALSE(parse_diag_message(reinterpret_cast<nlmsghdr*>(b.data()), b.size(), e, &d, error));
  b = message(8);
  reinterpret_cast<inet_diag_msg*>(b.data() + NLMSG_HDRLEN)->idiag_family = 99;
  EXPECT_FALSE(parse_diag_message(reinterpret_cast<nlmsghdr*>(b.data()), b.size(), e, &d, error));
}

// Prometheus' per-flow series and udp_firefly's ongoing fireflies find a socket's flow however the
// plugin named its ends.
TEST(FindSocketFlow, EitherDirectionOrNone) {
  SockEntry e;
  e.local = *IpAddress::parse("2001:db8::1");
  e.remote = *IpAddress::parse("2001:db8::2");
  e.local_port = 40000;
  e.remote_port = 443;
  FlowTable<FlowKey, int, FlowKeyHash> flows(4);
  EXPECT_EQ(find_socket_flow(flows, e), nullptr);
  flows.emplace({Protocol::kTcp, e.remote, e.local, e.remote_port, e.local_port},
                2);  // reported from the peer
  ASSERT_NE(find_socket_flow(flows, e), nullptr);
  EXPECT_EQ(*find_socket_flow(flows, e), 2);
  flows.emplace({Protocol::kTcp, e.local, e.remote, e.local_port, e.remote_port},
                1);  // and from here: ours first
  EXPECT_EQ(*find_socket_flow(flows, e), 1);
  flows.clear();
  flows.emplace({Protocol::kUdp, e.local, e.remote, e.local_port, e.remote_port},
                3);  // another protocol
  EXPECT_EQ(find_socket_flow(flows, e), nullptr);
}

}  // namespace
}  // namespace flowd::netlink
