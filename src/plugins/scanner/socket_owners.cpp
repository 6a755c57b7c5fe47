// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/socket_owners.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string_view>

namespace flowd::scanner {
namespace {

bool all_digits(const char* s) {
  if (!*s) return false;
  for (; *s; ++s)
    if (*s < '0' || *s > '9') return false;
  return true;
}

std::string read_comm(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return {};
  std::string s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

}  // namespace

void socket_inodes_of(const std::string& proc_root, const std::string& process,
                      std::unordered_set<std::uint32_t>& inodes) {
  inodes.clear();
  DIR* proc = ::opendir(proc_root.c_str());
  if (!proc) return;
  while (dirent* d = ::readdir(proc)) {
    if (!all_digits(d->d_name)) continue;
    std::string pid_dir = proc_root + "/" + d->d_name;
    if (read_comm(pid_dir + "/comm") != process) continue;
    std::string fd_dir = pid_dir + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (!fds) continue;
    while (dirent* f = ::readdir(fds)) {
      if (!all_digits(f->d_name)) continue;
      char target[64];
      ssize_t n = ::readlinkat(::dirfd(fds), f->d_name, target, sizeof target - 1);
      if (n <= 0) continue;
      std::string_view t(target, static_cast<std::size_t>(n));
      constexpr std::string_view kPrefix = "socket:[";
      if (!t.starts_with(kPrefix) || !t.ends_with("]")) continue;
      std::uint32_t inode = 0;
      auto digits = t.substr(kPrefix.size(), t.size() - kPrefix.size() - 1);
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
      if (ec == std::errc() && p == digits.data() + digits.size()) inodes.insert(inode);
    }
    ::closedir(fds);
  }
  ::closedir(proc);
}

}  // namespace flowd::scanner
