// SPDX-License-Identifier: Apache-2.0
#include "common/net/socket_address.hpp"

#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>
#include <stdexcept>

namespace flowd::net {

IpAddress SocketAddress::address() const {
  IpAddress a;
  if (storage.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), reinterpret_cast<const std::uint8_t*>(&s6->sin6_addr) + 12, 4);
    } else {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), &s6->sin6_addr, 16);
    }
  } else if (storage.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&storage);
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &s4->sin_addr, 4);
  }
  return a;
}

std::uint16_t SocketAddress::port() const {
  if (storage.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  if (storage.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  return 0;
}

std::string SocketAddress::to_string() const {
  IpAddress a = address();
  if (a.family == 0) return "(no address)";
  // Appended piece by piece: GCC 12's -Wrestrict misfires on operator+ chains of temporaries at
  // -O3.
  std::string out;
  if (a.family == AF_INET6) out += '[';
  out += a.to_string();
  if (a.family == AF_INET6) out += ']';
  out += ':';
  out += std::to_string(port());
  return out;
}

SocketAddress SocketAddress::of(const IpAddress& address, std::uint16_t port) {
  SocketAddress s;
  if (address.family == AF_INET6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&s.storage);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    std::memcpy(&s6->sin6_addr, address.bytes.data(), 16);
    s.length = sizeof(sockaddr_in6);
  } else if (address.family == AF_INET) {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&s.storage);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    std::memcpy(&s4->sin_addr, address.bytes.data(), 4);
    s.length = sizeof(sockaddr_in);
  }
  return s;
}

SocketAddress SocketAddress::of(const sockaddr_storage& ss, socklen_t length) {
  SocketAddress s;
  s.storage = ss;
  s.length = length;
  return s;
}

std::vector<SocketAddress> resolve(const std::string& host, std::uint16_t port,
                                   const ResolveOptions& options) {
  addrinfo hints{};
  hints.ai_family = options.family;
  hints.ai_socktype = options.socktype;
  hints.ai_flags = AI_NUMERICSERV | (options.passive ? AI_PASSIVE : 0) |
                   (options.numeric_host ? AI_NUMERICHOST : 0);
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const std::string where = (host.find(':') != std::string::npos ? "[" + host + "]"
                             : host.empty()                      ? "*"
                                                                 : host) +
                            ":" + service;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
      rc != 0)
    throw std::runtime_error("cannot resolve " + where + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(res, ::freeaddrinfo);
  std::vector<SocketAddress> out;
  for (const addrinfo* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SocketAddress s;
    std::memcpy(&s.storage, ai->ai_addr, ai->ai_addrlen);
    s.length = ai->ai_addrlen;
    out.push_back(s);
  }
  if (out.empty()) throw std::runtime_error("cannot resolve " + where + ": no address");
  return out;
}

}  // namespace flowd::net
