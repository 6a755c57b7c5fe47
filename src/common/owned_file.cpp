// SPDX-License-Identifier: Apache-2.0
#include "common/owned_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace flowd {

UniqueFd open_owned_file_for_reading(const std::string& path, std::size_t max_bytes,
                                     std::size_t& size, std::string& error) {
  error.clear();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    // O_NOFOLLOW's ELOOP: a symbolic link, which flowd never reads through (say so, not
    // "Too many levels of symbolic links").
    if (errno == ELOOP)
      error = "a symbolic link, not a regular file of this user: flowd does not follow it";
    else if (errno != ENOENT)
      error = std::strerror(errno);
    return {};
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    error = "not a regular file of this user";
    return {};
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    error = fmt::format("{} bytes, more than the {} read at most", st.st_size, max_bytes);
    return {};
  }
  size = static_cast<std::size_t>(st.st_size);
  return fd;
}

std::optional<std::string> read_owned_regular_file(const std::string& path, std::size_t max_bytes,
                                                   std::string& error) {
  std::size_t size = 0;
  const UniqueFd fd = open_owned_file_for_reading(path, max_bytes, size, error);
  if (!fd) return std::nullopt;
  std::string body(size, '\0');
  std::size_t off = 0;
  while (off < body.size()) {
    const ssize_t n = ::read(fd.get(), body.data() + off, body.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::strerror(errno);
      return std::nullopt;
    }
    if (n == 0) break;
    off += static_cast<std::size_t>(n);
  }
  body.resize(off);
  return body;
}

std::string describe_file_type(mode_t m) {
  if (S_ISLNK(m)) return "a symbolic link";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a named pipe";
  if (S_ISCHR(m) || S_ISBLK(m)) return "a device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISREG(m)) return "a regular file";
  return "not a regular file";
}

UniqueFd open_owned_regular_file(const std::string& path, int extra_flags, mode_t mode) {
  const std::string hint = "; remove it or choose another path";
  // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader (or, with one, hand
  // flowd a pipe); it is refused below either way. It is cleared again for the regular file.
  // O_TRUNC waits for the checks: another user's file is refused whole, not emptied first.
  const bool truncate = (extra_flags & O_TRUNC) != 0;
  UniqueFd fd(::open(path.c_str(),
                     O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
                         (extra_flags & ~O_TRUNC),
                     mode));
  if (!fd) {
    const int e = errno;
    struct stat st {};
    const bool found = ::lstat(path.c_str(), &st) == 0;
    if (e == ELOOP || (found && !S_ISREG(st.st_mode)))
      throw std::runtime_error(path + " is " +
                               (found ? describe_file_type(st.st_mode) : "a symbolic link") +
                               ", not a regular file: flowd does not write through it" + hint);
    throw std::system_error(e, std::generic_category(), "open " + path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    throw std::system_error(errno, std::generic_category(), "fstat " + path);
  if (!S_ISREG(st.st_mode))
    throw std::runtime_error(path + " is " + describe_file_type(st.st_mode) +
                             ", not a regular file: flowd does not write into it" + hint);
  if (st.st_uid != ::geteuid())
    throw std::runtime_error(path + " is owned by uid " + std::to_string(st.st_uid) +
                             ", not by flowd's user (uid " + std::to_string(::geteuid()) +
                             "): flowd does not write into another user's file; remove it, chown "
                             "it to flowd's user, or choose another path");
  if (st.st_nlink != 1)
    throw std::runtime_error(path + " has " + std::to_string(st.st_nlink) +
                             " hard links: flowd writes only to a file with one name" + hint);
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "fcntl " + path);
  if (truncate && ::ftruncate(fd.get(), 0) != 0)
    throw std::system_error(errno, std::generic_category(), "ftruncate " + path);
  return fd;
}

void create_private_directories(const std::string& dir, mode_t mode) {
  // Component by component with mkdir(2)'s mode, which the umask can only narrow: a
  // flowd started by hand under umask 000 must not leave a work_dir anyone can write (and so
  // delete the journal or the marker record in).
  std::filesystem::path made;
  for (const auto& part : std::filesystem::path(dir)) {
    made /= part;
    if (made == made.root_path()) continue;
    ::mkdir(made.c_str(), mode);  // EEXIST for the parts already there: left as they are
  }
}

std::string replace_file_atomically(const std::string& path, const std::string& body, mode_t mode) {
  auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) create_private_directories(dir.string());
  std::string tmp = path + kTemporaryInfix + "XXXXXX";
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return tmp + ": " + std::strerror(errno);
  std::size_t off = 0;
  int err = 0;
  while (off < body.size()) {
    ssize_t n = ::write(fd.get(), body.data() + off, body.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    off += static_cast<std::size_t>(n);
  }
  if (!err && ::fchmod(fd.get(), mode) != 0) err = errno;
  if (!err && ::fsync(fd.get()) != 0) err = errno;
  fd.reset();
  if (!err && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (!err) return {};
  ::unlink(tmp.c_str());
  return path + ": " + std::strerror(err);
}

std::size_t remove_stale_temporaries(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string prefix = p.filename().string() + kTemporaryInfix;
  std::error_code ec;
  std::size_t removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(
           p.parent_path().empty() ? std::filesystem::path(".") : p.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    if (!std::all_of(name.begin() + static_cast<std::ptrdiff_t>(prefix.size()), name.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0; }))
      continue;
    struct stat sb {};
    if (::lstat(e.path().c_str(), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != ::geteuid())
      continue;  // not a file this user's mkostemp made
    if (::unlink(e.path().c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace flowd
