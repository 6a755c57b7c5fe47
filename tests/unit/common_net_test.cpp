// SPDX-License-Identifier: Apache-2.0
// src/common: UniqueFd ownership and socket-address conversion.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/eventfd.h>

#include <cstring>
#include <stdexcept>
#include <system_error>

#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"

namespace flowd {
namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

TEST(UniqueFd, ClosesOnDestructionResetAndMoveAssignment) {
  int raw = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    EXPECT_TRUE(a);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a);
    EXPECT_EQ(b.get(), raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));

  int r1 = ::eventfd(0, EFD_CLOEXEC), r2 = ::eventfd(0, EFD_CLOEXEC);
  UniqueFd x(r1), y(r2);
  x = std::move(y);  // r1 is closed, x owns r2
  EXPECT_FALSE(is_open(r1));
  EXPECT_EQ(x.get(), r2);
  int released = x.release();
  EXPECT_FALSE(x);
  EXPECT_TRUE(is_open(released));
  x.reset(released);
  x.reset();
  EXPECT_FALSE(is_open(r2));
}

TEST(UniqueFd, CheckedFdThrowsWithErrno) {
  errno = EMFILE;
  try {
    (void)checked_fd(-1, "epoll_create1");
    FAIL() << "no throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EMFILE);
    EXPECT_NE(std::string(e.what()).find("epoll_create1"), std::string::npos);
  }
}

TEST(SocketAddress, RoundTripsBothFamiliesAndUnmapsV4MappedPeers) {
  auto v4 = *IpAddress::parse("192.0.2.7");
  auto s4 = net::SocketAddress::of(v4, 2055);
  EXPECT_EQ(s4.length, sizeof(sockaddr_in));
  EXPECT_EQ(s4.address(), v4);
  EXPECT_EQ(s4.port(), 2055);
  EXPECT_EQ(s4.to_string(), "192.0.2.7:2055");

  auto v6 = *IpAddress::parse("2001:db8::1");
  auto s6 = net::SocketAddress::of(v6, 4739);
  EXPECT_EQ(s6.length, sizeof(sockaddr_in6));
  EXPECT_EQ(s6.address(), v6);
  EXPECT_EQ(s6.to_string(), "[2001:db8::1]:4739");

  // What a dual-stack "::" socket reports for an IPv4 exporter.
  sockaddr_storage ss{};
  auto* m = reinterpret_cast<sockaddr_in6*>(&ss);
  m->sin6_family = AF_INET6;
  m->sin6_port = htons(6343);
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:198.18.0.9", &m->sin6_addr), 1);
  auto mapped = net::SocketAddress::of(ss, sizeof(sockaddr_in6));
  EXPECT_EQ(mapped.address(), *IpAddress::parse("198.18.0.9"));
  EXPECT_EQ(mapped.port(), 6343);

  net::SocketAddress none;
  EXPECT_EQ(none.address().family, 0);
  EXPECT_EQ(none.port(), 0);
}

TEST(SocketAddress, ResolvesLiteralsAndTheWildcardAndNamesTheFailure) {
  auto r = net::resolve("::1", 9000, {.numeric_host = true});
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r[0].to_string(), "[::1]:9000");
  auto any = net::resolve("", 2055, {.passive = true, .family = AF_INET});
  EXPECT_EQ(any[0].to_string(), "0.0.0.0:2055");
  try {
    (void)net::resolve("not an address", 1, {.numeric_host = true});
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot resolve not an address:1"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace flowd
