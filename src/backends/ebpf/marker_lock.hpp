// SPDX-License-Identifier: Apache-2.0
// MarkerLock: what tells a live flowd marker from a dead one (issue 13). Each marker holds one lock
// per interface it marks and one per pinned map: a listening abstract AF_UNIX socket named
// "\0flowd-marker:<what>". The kernel releases it when the process dies, kill -9 included, so a
// flowd that finds the lock free knows the filter or pin it finds is a dead one's; one that finds
// it held refuses to start instead of taking over a live marker's hook. Abstract socket names are
// per network namespace, as interfaces are.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.hpp"

namespace flowd::ebpf {

class MarkerLock {
 public:
  MarkerLock() = default;
  // `what` names the resource, e.g. "if:eth0" or "pin:/sys/fs/bpf/flowd/flow_labels"; names longer
  // than an abstract socket name allows (107 bytes) are shortened with a hash.
  static std::string socket_name(const std::string& what);

  // Takes the lock for `what`. Returns a held lock, or an empty one with `holder` set to the pid of
  // the live process that holds it (0 when it cannot be told) and `error` saying why it failed.
  static MarkerLock acquire(const std::string& what, pid_t& holder, std::string& error);

  bool held() const { return static_cast<bool>(fd_); }
  const std::string& what() const { return what_; }

 private:
  UniqueFd fd_;
  std::string what_;
};

}  // namespace flowd::ebpf
