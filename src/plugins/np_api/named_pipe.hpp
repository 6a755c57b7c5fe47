// SPDX-License-Identifier: Apache-2.0
// The named pipe (FIFO) np_api reads, opened so that a local user who can write its directory
// cannot turn flowd against another file (issue 13): nothing is done by path that could follow a
// symbolic link; the pipe is opened with O_NOFOLLOW, proven with fstat() to be a FIFO flowd's user
// owns, and its mode and group are set on the descriptor.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/unique_fd.hpp"

namespace spdlog {
class logger;
}

namespace flowd::np_api {

struct PipeSpec {
  std::string path;
  mode_t mode = 0666;          // set on the pipe whether flowd created it or found it
  std::optional<gid_t> group;  // nullopt: leave the group as created (flowd's)
};

struct OpenPipe {
  UniqueFd fd;  // O_RDWR | O_NONBLOCK: flowd is a writer too, so the pipe never reports EOF
  dev_t dev = 0;
  ino_t ino = 0;
  bool created = false;
};

// Opens spec.path for reading, creating the FIFO (and its directory) when the path does not exist.
// What it finds at the path:
//   - a FIFO flowd's effective user owns: reused (its mode and group set as configured);
//   - a FIFO another user owns: refused (another user could read or fill it);
//   - a symbolic link, a directory, a device or a socket: refused;
//   - a regular file: a writer's `echo … > path` while no pipe was there leaves one. When it is
//     provably such a leftover (one link, at most 1 MiB, nothing but np_api lines) it is moved to
//     `<path>.leftover` and a new pipe made, with a warning naming the number of lines it held;
//     anything else is refused.
// The pipe is then locked (flock, LOCK_EX): a pipe another process holds locked is refused.
// Throws std::runtime_error (the message says exactly what to remove or change) or
// std::system_error (errno of the failing call, naming it and the path).
OpenPipe open_named_pipe(const PipeSpec& spec, spdlog::logger& log);

// Sets spec.mode and spec.group on the open pipe (fchmod/fchown: never by path). Throws
// std::system_error when the group cannot be set; a mode that cannot be set is logged.
void apply_mode_and_group(int fd, const PipeSpec& spec, spdlog::logger& log);

// True when `path` is still the pipe (dev, ino) — lstat(), so a link put in its place is not
// followed.
bool path_names(const std::string& path, dev_t dev, ino_t ino);

// Watches the pipe's directory (inotify) for its name being removed, renamed or replaced, so that
// np_api can make the pipe again when it is deleted while flowd runs (a writer's `echo … > PATH`
// would otherwise create a regular file nobody reads). fd() is -1 when inotify is unavailable (no
// watch left: fs.inotify.max_user_watches), which is logged; the pipe then works without it.
class PipeDirWatch {
 public:
  PipeDirWatch(const std::string& path, spdlog::logger& log);
  int fd() const { return fd_.get(); }
  // Reads the pending events; true when one named the pipe or the directory itself went away.
  bool concerns_pipe();

 private:
  UniqueFd fd_;
  std::string name_;
};

}  // namespace flowd::np_api
