// SPDX-License-Identifier: Apache-2.0
// src/common/net/udp_listener: binding on loopback (both families, IPv4 through "::"), the
// recvmmsg batch, truncation, and the errors that name the address.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <string>
#include <system_error>
#include <vector>

#include "common/net/udp_listener.hpp"

namespace flowd::net {
namespace {

// Sends `payload` from a fresh socket of `from_family` to `to`; returns the sender's port.
std::uint16_t send_to(int from_family, const SocketAddress& to, const std::string& payload) {
  UniqueFd s = checked_fd(::socket(from_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket");
  auto any = SocketAddress::of(*IpAddress::parse(from_family == AF_INET ? "127.0.0.1" : "::1"), 0);
  EXPECT_EQ(::bind(s.get(), any.get(), any.length), 0);
  EXPECT_EQ(::sendto(s.get(), payload.data(), payload.size(), 0, to.get(), to.length),
            static_cast<ssize_t>(payload.size()));
  SocketAddress self;
  self.length = sizeof self.storage;
  ::getsockname(s.get(), self.get(), &self.length);
  return self.port();
}

bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 2000) == 1;
}

struct Got {
  std::string payload;
  IpAddress sender;
  std::uint16_t port;
  std::size_t length;
  bool truncated;
};

std::vector<Got> receive_all(DatagramBatch& batch, const UdpListener& l, std::size_t expected) {
  std::vector<Got> got;
  while (got.size() < expected && wait_readable(l.fd()))
    batch.receive(l.fd(), [&](const Datagram& d) {
      got.push_back({std::string(d.payload.begin(), d.payload.end()), d.sender.address(),
                     d.sender.port(), d.length, d.truncated()});
    });
  return got;
}

SocketAddress loopback(int family, std::uint16_t port) {
  return SocketAddress::of(*IpAddress::parse(family == AF_INET ? "127.0.0.1" : "::1"), port);
}

TEST(UdpListener, ReceivesOnIpv4Loopback) {
  UdpListener l("127.0.0.1", 0, {.rcvbuf = 1 << 20, .owner = {}});
  ASSERT_TRUE(l);
  EXPECT_EQ(l.local().family(), AF_INET);
  ASSERT_NE(l.local().port(), 0);
  auto port = send_to(AF_INET, loopback(AF_INET, l.local().port()), "hello");
  DatagramBatch batch(8, 2048);
  auto got = receive_all(batch, l, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "hello");
  EXPECT_EQ(got[0].sender.to_string(), "127.0.0.1");
  EXPECT_EQ(got[0].port, port);
  EXPECT_FALSE(got[0].truncated);
}

TEST(UdpListener, ReceivesOnIpv6Loopback) {
  UdpListener l("::1", 0, {});
  EXPECT_EQ(l.local().family(), AF_INET6);
  send_to(AF_INET6, loopback(AF_INET6, l.local().port()), "six");
  DatagramBatch batch(4, 512);
  auto got = receive_all(batch, l, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, "six");
  EXPECT_EQ(got[0].sender.to_string(), "::1");
}

// "::" takes IPv4 as well, whatever net.ipv6.bindv6only says (IPV6_V6ONLY=0), and an IPv4 sender
// comes back as IPv4, not as ::ffff:127.0.0.1.
TEST(UdpListener, Ipv6WildcardTakesIpv4) {
  UdpListener l("::", 0, {});
  int v6only = -1;
  socklen_t len = sizeof v6only;
  ASSERT_EQ(::getsockopt(l.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
  EXPECT_EQ(v6only, 0);
  send_to(AF_INET, loopback(AF_INET, l.local().port()), "four");
  send_to(AF_INET6, loopback(AF_INET6, l.local().port()), "six");
  DatagramBatch batch(4, 512);
  auto got = receive_all(batch, l, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload, "four");
  EXPECT_TRUE(got[0].sender.is_v4());
  EXPECT_EQ(got[0].sender.to_string(), "127.0.0.1");
  EXPECT_EQ(got[1].sender.to_string(), "::1");
}

// More datagrams than one batch holds: each recvmmsg returns at most `batch`, in order, and the
// buffers are reused (a shorter datagram after a longer one shows none of the older bytes).
TEST(UdpListener, BatchesInOrderAndReusesBuffers) {
  UdpListener l("127.0.0.1", 0, {.rcvbuf = 1 << 20, .owner = {}});
  const auto to = loopback(AF_INET, l.local().port());
  UniqueFd s = checked_fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket");
  constexpr int kCount = 20;
  for (int i = 0; i < kCount; ++i) {
    std::string p = i % 2 ? std::to_string(i) : std::string(100, 'x') + std::to_string(i);
    ASSERT_EQ(::sendto(s.get(), p.data(), p.size(), 0, to.get(), to.length),
              static_cast<ssize_t>(p.size()));
  }
  DatagramBatch batch(8, 256);
  std::vector<std::string> got;
  std::vector<std::size_t> per_call;
  while (got.size() < kCount && wait_readable(l.fd()))
    per_call.push_back(batch.receive(
        l.fd(), [&](const Datagram& d) { got.emplace_back(d.payload.begin(), d.payload.end()); }));
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i)
    EXPECT_EQ(got[static_cast<std::size_t>(i)],
              i % 2 ? std::to_string(i) : std::string(100, 'x') + std::to_string(i));
  for (auto n : per_call) EXPECT_LE(n, 8u);
  EXPECT_GE(per_call.size(), 3u);
  EXPECT_EQ(batch.receive(l.fd(), [](const Datagram&) {}), 0u);  // nothing waiting: no block
}

TEST(UdpListener, LongerDatagramIsTruncatedAndSaysSo) {
  UdpListener l("127.0.0.1", 0, {});
  send_to(AF_INET, loopback(AF_INET, l.local().port()), std::string(300, 'a'));
  DatagramBatch batch(2, 100);
  auto got = receive_all(batch, l, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload.size(), 100u);
  EXPECT_EQ(got[0].length, 300u);
  EXPECT_TRUE(got[0].truncated);
}

// Several workers share one address with SO_REUSEPORT (each gets its own socket).
TEST(UdpListener, ReusePortSharesTheAddress) {
  UdpListener a("127.0.0.1", 0, {.reuse_port = true, .rcvbuf = 0, .owner = {}});
  UdpListener b("127.0.0.1", a.local().port(), {.reuse_port = true, .rcvbuf = 0, .owner = {}});
  EXPECT_EQ(b.local().port(), a.local().port());
  int on = 0;
  socklen_t len = sizeof on;
  ASSERT_EQ(::getsockopt(b.fd(), SOL_SOCKET, SO_REUSEPORT, &on, &len), 0);
  EXPECT_EQ(on, 1);
}

// An address that is not this host's (TEST-NET-1, RFC 5737): the error names it, the failed call
// and who listens.
TEST(UdpListener, ErrorsNameTheAddress) {
  try {
    UdpListener c("192.0.2.1", 2055, {.reuse_port = false, .rcvbuf = 0, .owner = "[plugin.test] "});
    ADD_FAILURE() << "bind to a foreign address succeeded";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EADDRNOTAVAIL);
    EXPECT_NE(
        std::string(e.what()).find("[plugin.test] cannot listen on UDP 192.0.2.1:2055 (bind)"),
        std::string::npos)
        << e.what();
  }
  EXPECT_THROW(UdpListener("not an address", 1, {}), std::runtime_error);
}

TEST(UdpListener, CloseClosesTheSocket) {
  UdpListener a("127.0.0.1", 0, {});
  const int fd = a.fd();
  ASSERT_NE(::fcntl(fd, F_GETFD), -1);
  a.close();
  EXPECT_FALSE(a);
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

}  // namespace
}  // namespace flowd::net
