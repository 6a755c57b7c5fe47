// SPDX-License-Identifier: Apache-2.0
// An eventfd that becomes readable when a std::stop_token is triggered, so a worker can poll() its
// sockets and the stop request together instead of waking up on a timer to check a flag.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <system_error>

namespace flowd {

class StopFd {
 public:
  explicit StopFd(std::stop_token token) : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    cb_.emplace(token, Signal{fd_});
  }
  ~StopFd() {
    cb_.reset();
    ::close(fd_);
  }
  StopFd(const StopFd&) = delete;
  StopFd& operator=(const StopFd&) = delete;
  int fd() const { return fd_; }

 private:
  struct Signal {
    int fd;
    void operator()() const noexcept {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
    }
  };
  int fd_;
  std::optional<std::stop_callback<Signal>> cb_;
};

}  // namespace flowd
