// SPDX-License-Identifier: Apache-2.0
// The marker record: what a running flowd marker attached, kept in `work_dir` so that it survives
// kill -9 (issue 13). A restart reads it to remove the filters a killed flowd left on interfaces no
// longer configured, and to know which clsact qdiscs that flowd created (those go at the next clean
// stop; one that was there before — the admin's — never does). A clean stop removes it.
//
// Why work_dir and not beside the pin: a BPF file system holds only BPF objects (no regular files),
// and pin_path may be empty; work_dir is flowd's own writable state directory (systemd's
// CacheDirectory) and exists whether or not the map is pinned.
//
// File: <work_dir>/ebpf_marker.json, mode 0600, written atomically (mkostemp + fsync + rename),
// read with O_NOFOLLOW and only when it is a regular file of this user of at most 65,536 bytes:
//   {"pid": 1234, "hooks": [{"interface": "eth0", "ifindex": 2, "created_clsact": true}]}
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace flowd::ebpf {

struct RecordedHook {
  std::string interface;
  int ifindex = 0;
  bool created_clsact = false;  // flowd created the interface's clsact qdisc
};

struct MarkerRecord {
  pid_t pid = 0;  // the flowd that wrote it
  std::vector<RecordedHook> hooks;
};

// "<work_dir>/ebpf_marker.<netns inode>.json"; empty when work_dir is empty (no record is kept).
std::string marker_record_path(const std::string& work_dir);

// The record at `path`; nullopt when there is none, or `error` says why it was not used (a link,
// another user's file, too large, not the JSON above).
std::optional<MarkerRecord> read_marker_record(const std::string& path, std::string& error);

// Writes `record` at `path` atomically, creating the directory. Returns an empty string, or why
// not.
std::string write_marker_record(const std::string& path, const MarkerRecord& record);

// Removes the record (a clean stop).
void remove_marker_record(const std::string& path);

// The record's lock: `<path>.lock` (created 0600 with the directory if missing, never through a
// link) under an exclusive flock(), as the flow journal's. The record is one per network namespace
// and work_dir, and only its lock holder may write, read for the clean-up after a killed flowd, or
// remove it: a second flowd with the same work_dir overwrote the first one's record and removed it
// at its stop, so the first one's filters were never cleaned up after a kill -9 (try15h D3). The
// kernel releases the lock when its holder dies, kill -9 included. Returns the held lock, or an
// invalid descriptor with `busy` (another process holds it) or `error` set.
UniqueFd lock_marker_record(const std::string& path, bool& busy, std::string& error);

}  // namespace flowd::ebpf
