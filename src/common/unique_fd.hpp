// SPDX-License-Identifier: Apache-2.0
// UniqueFd: sole owner of a file descriptor, closed on destruction, on reset() and when moved over.
// Every socket, epoll, timerfd, eventfd and netlink descriptor flowd opens lives in one, so an
// early return or an exception cannot leak it (structure review §3.5).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

namespace flowd {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of `fd`; a negative value means "none".
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives the descriptor up without closing it.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the owned descriptor (if any) and owns `fd` instead. close() errors are ignored: the
  // descriptor is gone either way (close(2), "Dealing with error returns from close()").
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Wraps the result of a creating call (socket, epoll_create1, timerfd_create, eventfd, open):
// the owned descriptor, or std::system_error(errno, what) when the call returned -1 (EMFILE,
// ENFILE, ENOMEM, EACCES ...).
inline UniqueFd checked_fd(int fd, const std::string& what) {
  if (fd < 0) throw std::system_error(errno, std::generic_category(), what);
  return UniqueFd(fd);
}

}  // namespace flowd
