// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/marker_lock.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <functional>

#include <fmt/format.h>

namespace flowd::ebpf {
namespace {

// sun_path less the leading NUL of an abstract name.
constexpr std::size_t kMaxName = sizeof(sockaddr_un::sun_path) - 1;

socklen_t abstract_address(const std::string& name, sockaddr_un& addr) {
  addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
}

}  // namespace

std::string MarkerLock::socket_name(const std::string& what) {
  std::string name = "flowd-marker:" + what;
  if (name.size() <= kMaxName) return name;
  std::string hash = fmt::format("#{:016x}", std::hash<std::string>{}(what));
  return name.substr(0, kMaxName - hash.size()) + hash;
}

MarkerLock MarkerLock::acquire(const std::string& what, pid_t& holder, std::string& error) {
  holder = 0;
  MarkerLock lock;
  const std::string name = socket_name(what);
  sockaddr_un addr;
  socklen_t len = abstract_address(name, addr);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    error = std::string("socket: ") + std::strerror(errno);
    return lock;
  }
  // listen() so that a flowd refused the lock can connect and learn our pid (SO_PEERCRED). Nobody
  // accepts: a refused start's connection waits in the backlog, which bounds them (later ones are
  // refused, and their flowd names no pid).
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      ::listen(fd.get(), 16) == 0) {
    lock.fd_ = std::move(fd);
    lock.what_ = what;
    return lock;
  }
  int err = errno;
  error = err == EADDRINUSE ? "held by another flowd" : std::string(std::strerror(err));
  if (err != EADDRINUSE) return lock;
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0) {
    ucred cred{};
    socklen_t clen = sizeof cred;
    if (::getsockopt(probe.get(), SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) holder = cred.pid;
  }
  return lock;
}

}  // namespace flowd::ebpf
