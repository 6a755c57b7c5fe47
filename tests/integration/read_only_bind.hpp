// SPDX-License-Identifier: Apache-2.0
// A directory bound over itself read-only, for tests of a work_dir flowd cannot write (privileged).
#pragma once

#include <string>
#include <utility>

#include "harness.hpp"

namespace flowd::test {

// `dir` bound over itself read-only for the object's lifetime (what a process opened before stays
// writable through its descriptors: they are of the mount below). A process started after it, in
// a mount namespace of its own (ip netns exec), sees it read-only too: the namespace is a copy.
struct ReadOnlyBind {
  explicit ReadOnlyBind(const std::string& dir) : path(dir) {
    std::string out;
    ok = run_shell("mount --bind " + dir + " " + dir, "", out) == 0;
    if (ok && run_shell("mount -o remount,ro,bind " + dir, "", out) != 0) release();
  }
  ~ReadOnlyBind() { release(); }
  ReadOnlyBind(const ReadOnlyBind&) = delete;
  ReadOnlyBind& operator=(const ReadOnlyBind&) = delete;
  void release() {
    std::string out;
    if (std::exchange(ok, false)) run_shell("umount " + path, "", out);
  }
  std::string path;
  bool ok = false;
};

}  // namespace flowd::test
