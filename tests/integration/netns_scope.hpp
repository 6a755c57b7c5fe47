// SPDX-License-Identifier: Apache-2.0
// Test helpers for real TCP connections inside the namespaces a test created: while a NetnsScope
// lives, sockets the calling thread creates belong to that namespace (setns), and stay there.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace flowd::test {

class NetnsScope {
 public:
  explicit NetnsScope(const std::string& ns) {
    home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (home_ < 0 || fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot enter network namespace " + ns + ": " +
                               std::strerror(errno));
    }
    ::close(fd);
  }
  ~NetnsScope() {
    ::setns(home_, CLONE_NEWNET);
    ::close(home_);
  }
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  int home_;
};

// An address and port as a sockaddr; IPv6 when `ip` has a colon.
inline socklen_t make_sockaddr(const std::string& ip, int port, sockaddr_storage& ss) {
  ss = {};
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    return sizeof *a;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
  return sizeof *a;
}

// A listening TCP socket on ip:port in the current namespace; -1 on failure.
inline int tcp_listen(const std::string& ip, int port) {
  sockaddr_storage ss;
  socklen_t len = make_sockaddr(ip, port, ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 64) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A connected TCP socket to ip:port; -1 on failure. `local_port` gets the client's port.
inline int tcp_connect(const std::string& ip, int port, int* local_port = nullptr) {
  sockaddr_storage ss;
  socklen_t len = make_sockaddr(ip, port, ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  if (local_port) {
    sockaddr_storage me{};
    socklen_t ml = sizeof me;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &ml);
    *local_port = ntohs(me.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&me)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&me)->sin_port);
  }
  return fd;
}

}  // namespace flowd::test
