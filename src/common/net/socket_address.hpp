// SPDX-License-Identifier: Apache-2.0
// Socket addresses <-> flowd's IpAddress, and name resolution, in one place (four hand-written
// copies before: the netflow and firefly receivers, the firefly sender, STUN).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "flowd/flow_id.hpp"

namespace flowd::net {

// A sockaddr_in or sockaddr_in6 with its length, as bind(), connect(), sendto() and recvfrom() use
// it.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  // The address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2, what a dual-stack
  // "::" socket reports for IPv4 peers) comes back as IPv4. An unset or non-IP family gives family
  // 0.
  IpAddress address() const;
  std::uint16_t port() const;     // host order; 0 for a non-IP family
  std::string to_string() const;  // "192.0.2.1:2055", "[2001:db8::1]:2055"

  static SocketAddress of(const IpAddress& address, std::uint16_t port);
  // Wraps what recvfrom()/recvmmsg()/getsockname() filled in.
  static SocketAddress of(const sockaddr_storage& ss, socklen_t length = sizeof(sockaddr_storage));
};

struct ResolveOptions {
  int socktype = SOCK_DGRAM;
  bool passive = false;       // AI_PASSIVE: an empty host means the wildcard address (for bind())
  bool numeric_host = false;  // AI_NUMERICHOST: never ask DNS
  int family = 0;             // AF_UNSPEC, AF_INET or AF_INET6
};

// getaddrinfo(3) on host and port. Throws std::runtime_error("cannot resolve <host:port>:
// <reason>") when the name does not resolve; the result is never empty.
std::vector<SocketAddress> resolve(const std::string& host, std::uint16_t port,
                                   const ResolveOptions& options = {});

}  // namespace flowd::net
