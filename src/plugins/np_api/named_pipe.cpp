// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/named_pipe.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "common/local_path.hpp"
#include "common/owned_file.hpp"
#include "plugins/np_api/pipe_line.hpp"

namespace flowd::np_api {
namespace {

constexpr off_t kMaxLeftoverBytes = 1 << 20;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string remove_hint(const std::string& path, mode_t kind = S_IFREG) {
  if (S_ISDIR(kind)) return "; remove it (rmdir " + path + ") or set [plugin.np_api] path";
  return "; remove it (rm " + path + ") or set [plugin.np_api] path";
}

// How many np_api lines the regular file at `path` holds, or -1 when it is not provably a leftover
// of writers (more than one link, too large, or anything but np_api lines in it). Read through a
// descriptor opened with O_NOFOLLOW and checked with fstat(), never logged.
long leftover_lines(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return -1;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
      st.st_size > kMaxLeftoverBytes)
    return -1;
  std::string body(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < body.size()) {
    ssize_t n = ::read(fd.get(), body.data() + got, body.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  body.resize(got);
  long lines = 0;
  std::string_view rest(body);
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    if (!has_pipe_line_syntax(line)) return -1;
    ++lines;
  }
  return lines;
}

void make_fifo(const std::string& path) {
  namespace fs = std::filesystem;
  auto parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::exists(parent, ec)) fs::create_directories(parent, ec);
  // Made private first; the configured mode is set on the descriptor once it is proven ours.
  if (::mkfifo(path.c_str(), 0600) != 0 && errno != EEXIST) fail_errno("mkfifo " + path);
}

}  // namespace

bool path_names(const std::string& path, dev_t dev, ino_t ino) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && st.st_dev == dev &&
         st.st_ino == ino;
}

void apply_mode_and_group(int fd, const PipeSpec& spec, spdlog::logger& log) {
  if (::fchmod(fd, spec.mode) != 0)
    log.warn("cannot set mode {:04o} on {}: {}", spec.mode, spec.path, std::strerror(errno));
  if (spec.group && ::fchown(fd, static_cast<uid_t>(-1), *spec.group) != 0) {
    if (errno == EPERM)
      throw std::runtime_error(
          "cannot give " + spec.path + " the group " + std::to_string(*spec.group) +
          " of [plugin.np_api] group: flowd's user (uid " + std::to_string(::geteuid()) +
          ") is not a member of it and lacks CAP_CHOWN");
    fail_errno("chown " + spec.path);
  }
}

PipeDirWatch::PipeDirWatch(const std::string& path, spdlog::logger& log)
    : name_(std::filesystem::path(path).filename().string()) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  fd_ = UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (fd_ && ::inotify_add_watch(fd_.get(), dir.c_str(),
                                 IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE |
                                     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) >= 0)
    return;
  log.warn(
      "cannot watch {} for the pipe's removal ({}): a pipe deleted while flowd runs is not made "
      "again until the next start",
      dir, std::strerror(errno));
  fd_.reset();
}

bool PipeDirWatch::concerns_pipe() {
  alignas(inotify_event) char buf[4096];
  bool concerns = false;
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: all read
    for (ssize_t at = 0; at < n;) {
      auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW)) ||
          (ev->len > 0 && name_ == ev->name))
        concerns = true;
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  return concerns;
}

OpenPipe open_named_pipe(const PipeSpec& spec, spdlog::logger& log) {
  const std::string& path = spec.path;
  refuse_foreign_links(path, "[plugin.np_api] path");
  OpenPipe out;
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) fail_errno("lstat " + path);
    make_fifo(path);
    out.created = true;
  } else if (S_ISREG(st.st_mode)) {
    long lines = leftover_lines(path);
    if (lines < 0)
      throw std::runtime_error(
          path +
          " is a regular file, not a named pipe, and not one flowd can prove is a "
          "writer's leftover (one link, at most 1 MiB, only np_api lines)" +
          remove_hint(path));
    // Never over an earlier leftover: PATH.leftover, then PATH.leftover.1 … .99 (RENAME_NOREPLACE).
    std::string aside;
    for (int n = 0; n < 100; ++n) {
      aside = path + ".leftover" + (n ? "." + std::to_string(n) : std::string());
      if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, aside.c_str(), RENAME_NOREPLACE) == 0)
        break;
      if (errno != EEXIST || n == 99)
        fail_errno("rename " + path + " to " + aside + " (remove old leftovers: rm " + path +
                   ".leftover*)");
    }
    log.warn(
        "{} was a regular file holding {} line(s) written while no pipe was at the path (a "
        "writer's `echo … > {}`); moved it to {} (the lines are not replayed) and made a new pipe",
        path, lines, path, aside);
    make_fifo(path);
    out.created = true;
  } else if (!S_ISFIFO(st.st_mode)) {
    throw std::runtime_error(path + " exists and is " + describe_file_type(st.st_mode) +
                             ", not a named pipe" + remove_hint(path, st.st_mode));
  } else if (st.st_uid != ::geteuid()) {
    throw std::runtime_error(path + " is a named pipe owned by uid " + std::to_string(st.st_uid) +
                             ", not by flowd's user (uid " + std::to_string(::geteuid()) +
                             "): flowd does not adopt another user's pipe" + remove_hint(path));
  }
  // O_RDWR: we are a writer too, so the pipe never reports EOF and writers never get ENXIO/EPIPE.
  // O_NOFOLLOW: a link put at the path between the checks above and here is refused, not followed.
  out.fd = UniqueFd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!out.fd) {
    if (errno == ELOOP)
      throw std::runtime_error(path + " was replaced by a symbolic link while flowd opened it" +
                               remove_hint(path));
    fail_errno("open " + path);
  }
  if (::fstat(out.fd.get(), &st) != 0) fail_errno("fstat " + path);
  if (!S_ISFIFO(st.st_mode) || st.st_uid != ::geteuid())
    throw std::runtime_error(
        path + " was replaced by " +
        (S_ISFIFO(st.st_mode) ? "another user's pipe" : describe_file_type(st.st_mode)) +
        " while flowd opened it" + remove_hint(path));
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  // One reader per pipe: a second flowd on the same path would take half the lines and remove the
  // pipe when it stops. The lock goes with the descriptor (handed over across reloads, released
  // when the process dies, even by kill -9).
  if (::flock(out.fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw std::runtime_error(path +
                               " is read by another process (another flowd?) that holds its lock; "
                               "stop it or give this one another [plugin.np_api] path");
    fail_errno("flock " + path);
  }
  try {
    apply_mode_and_group(out.fd.get(), spec, log);
  } catch (...) {
    // Do not leave a pipe behind that this failed start made (with the mode it was asked for).
    if (out.created && path_names(path, out.dev, out.ino)) ::unlink(path.c_str());
    throw;
  }
  if (!out.created) log.info("reusing the existing named pipe {}", path);
  return out;
}

}  // namespace flowd::np_api
