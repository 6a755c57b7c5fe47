// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/named_pipe.hpp"

#include <fcntl.h>
#include <grp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include "common/owned_file.hpp"
#include "plugins/np_api/pipe_line.hpp"

namespace flowd::np_api {
namespace {

constexpr off_t kMaxLeftoverBytes = 1 << 20;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string remove_hint(const std::string& path) {
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

gid_t resolve_group(const std::string& text) {
  if (struct group* g = ::getgrnam(text.c_str())) return g->gr_gid;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() < 10)
    return static_cast<gid_t>(std::stoul(text));
  throw std::runtime_error("no group named '" + text + "'");
}

bool path_names(const std::string& path, dev_t dev, ino_t ino) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && st.st_dev == dev &&
         st.st_ino == ino;
}

void apply_mode_and_group(int fd, const PipeSpec& spec, spdlog::logger& log) {
  if (::fchmod(fd, spec.mode) != 0)
    log.warn("cannot set mode {:04o} on {}: {}", spec.mode, spec.path, std::strerror(errno));
  if (spec.group && ::fchown(fd, static_cast<uid_t>(-1), *spec.group) != 0)
    fail_errno("chown " + spec.path);
}

OpenPipe open_named_pipe(const PipeSpec& spec, spdlog::logger& log) {
  const std::string& path = spec.path;
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
    const std::string aside = path + ".leftover";
    if (::rename(path.c_str(), aside.c_str()) != 0) fail_errno("rename " + path + " to " + aside);
    log.warn(
        "{} was a regular file holding {} line(s) written while no flowd read the pipe (a writer's "
        "`echo … > {}`); moved it to {} (the lines are not replayed) and made a new pipe",
        path, lines, path, aside);
    make_fifo(path);
    out.created = true;
  } else if (!S_ISFIFO(st.st_mode)) {
    throw std::runtime_error(path + " exists and is " + describe_file_type(st.st_mode) +
                             ", not a named pipe" + remove_hint(path));
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
  apply_mode_and_group(out.fd.get(), spec, log);
  if (!out.created) log.info("reusing the existing named pipe {}", path);
  return out;
}

}  // namespace flowd::np_api
