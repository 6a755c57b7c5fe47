// SPDX-License-Identifier: Apache-2.0
// Which socket inodes belong to processes of a given name: /proc/<pid>/comm, then the
// "socket:[inode]" links in /proc/<pid>/fd.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>

namespace flowd::scanner {

// Fills `inodes` with the sockets of every process whose comm equals `process`. Processes that
// vanish or that we may not inspect are skipped.
void socket_inodes_of(const std::string& proc_root, const std::string& process,
                      std::unordered_set<std::uint32_t>& inodes);

}  // namespace flowd::scanner
