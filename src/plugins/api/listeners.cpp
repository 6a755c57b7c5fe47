// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/listeners.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "common/local_path.hpp"
#include "common/owned_file.hpp"
#include "flowd/flow_id.hpp"

namespace flowd::api {
namespace {

constexpr int kBacklog = 128;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw std::runtime_error("[plugin.api] socket: " + path + " is longer than " +
                             std::to_string(sizeof a.sun_path - 1) + " bytes");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// Whether a process accepts connections on the socket at `path`.
bool someone_listens(const sockaddr_un& a) {
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return false;
  return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
}

// What is at the path before flowd binds: nothing, or a stale socket of flowd's own (removed).
void clear_path(const std::string& path, const sockaddr_un& a) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    fail_errno("lstat " + path);
  }
  if (!S_ISSOCK(st.st_mode))
    throw std::runtime_error(path + " exists and is " + describe_file_type(st.st_mode) +
                             ", not flowd's socket; remove it (rm " + path +
                             ") or set [plugin.api] socket");
  if (st.st_uid != ::geteuid())
    throw std::runtime_error(path + " is a socket of uid " + std::to_string(st.st_uid) +
                             ", not of flowd's user; remove it (rm " + path +
                             ") or set [plugin.api] socket");
  if (someone_listens(a))
    throw std::runtime_error("another process (another flowd?) listens on " + path +
                             "; stop it first, or set [plugin.api] socket");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_errno("unlink " + path);
}

void set_mode_and_group(const UnixSocketSpec& spec) {
  // O_PATH | O_NOFOLLOW: a descriptor of whatever is at the path now, never a link's target;
  // proven to be a socket of flowd's user, then changed through /proc/self/fd (fchmod and fchown
  // do not work on O_PATH descriptors), which names that very inode.
  UniqueFd fd(::open(spec.path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) fail_errno("open " + spec.path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_errno("fstat " + spec.path);
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid())
    throw std::runtime_error(spec.path +
                             " was replaced while flowd made its socket there; not setting its "
                             "mode");
  std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
  if (::chmod(proc.c_str(), spec.mode) != 0) fail_errno("chmod " + spec.path);
  if (spec.group && ::chown(proc.c_str(), static_cast<uid_t>(-1), *spec.group) != 0) {
    if (errno == EPERM)
      throw std::runtime_error(
          "cannot give " + spec.path + " the group " + std::to_string(*spec.group) +
          " of [plugin.api] group: flowd's user (uid " + std::to_string(::geteuid()) +
          ") is not a member of it and lacks CAP_CHOWN");
    fail_errno("chown " + spec.path);
  }
}

}  // namespace

UniqueFd listen_unix(const UnixSocketSpec& spec) {
  namespace fs = std::filesystem;
  refuse_foreign_links(spec.path, "[plugin.api] socket");
  auto a = unix_address(spec.path);
  auto parent = fs::path(spec.path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::exists(parent, ec)) fs::create_directories(parent, ec);
  clear_path(spec.path, a);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) fail_errno("socket(AF_UNIX)");
  // Bound private: on Linux bind() gives the file the socket inode's mode (less the umask), which
  // fchmod() sets; the configured mode follows once the file is proven ours.
  ::fchmod(fd.get(), 0600);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    fail_errno("bind " + spec.path);
  try {
    set_mode_and_group(spec);
  } catch (...) {
    remove_unix_socket(spec.path);
    throw;
  }
  if (::listen(fd.get(), kBacklog) != 0) {
    int e = errno;
    remove_unix_socket(spec.path);
    errno = e;
    fail_errno("listen " + spec.path);
  }
  return fd;
}

void remove_unix_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == ::geteuid())
    ::unlink(path.c_str());
}

UniqueFd listen_tcp(const net::Endpoint& ep) {
  auto addr = IpAddress::parse(ep.host);
  if (!addr) throw std::runtime_error("[plugin.api] listen: " + ep.host + " is not an IP address");
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (addr->is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(ep.port);
    std::memcpy(&sin->sin_addr, addr->bytes.data(), 4);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(ep.port);
    std::memcpy(&sin6->sin6_addr, addr->bytes.data(), 16);
    len = sizeof *sin6;
  }
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) fail_errno("socket for " + ep.to_string());
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0)
    fail_errno("bind " + ep.to_string());
  if (::listen(fd.get(), kBacklog) != 0) fail_errno("listen " + ep.to_string());
  return fd;
}

}  // namespace flowd::api
