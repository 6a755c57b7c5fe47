// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/left_hooks.hpp"

#include <net/if.h>
#include <sys/stat.h>

#include <vector>

#include "backends/ebpf/marker_lock.hpp"
#include "backends/ebpf/tc_attachment.hpp"
#include "common/owned_file.hpp"
#include "flowd/log.hpp"

namespace flowd::ebpf {

std::optional<RecordedHook> remove_left_hook(const RecordedHook& h, pid_t owner,
                                             spdlog::logger& log) {
  pid_t holder = 0;
  std::string lock_error;
  // The key a live marker of the interface holds (ebpf_backend.cpp: interface_lock_key).
  const unsigned index =
      h.ifindex > 0 ? static_cast<unsigned>(h.ifindex) : ::if_nametoindex(h.interface.c_str());
  MarkerLock probe = MarkerLock::acquire(
      index ? "if:#" + std::to_string(index) : "if:" + h.interface, holder, lock_error);
  if (!probe.held()) {
    log.warn("leaving the marker on {} (in the record of flowd pid {}): {} (pid {})", h.interface,
             owner, lock_error, holder);
    return std::nullopt;  // the live flowd's now: not kept in this record
  }
  const RemovedHook r = remove_marker_hook(h.ifindex, h.created_clsact);
  if (r.interface_now.empty() || r.note == kNoMarkerFilter) {
    log.info("nothing to remove on {} (in the record of flowd pid {}): {}", h.interface, owner,
             r.note);
    return std::nullopt;
  }
  const std::string where = r.interface_now == h.interface
                                ? h.interface
                                : r.interface_now + " (recorded as " + h.interface + ": renamed since)";
  if (r.note == kEmptyClsactRemoved) {
    log.warn("flowd pid {}, which did not stop cleanly, left {} (no longer configured) with {}",
             owner, where, r.note);
    return std::nullopt;
  }
  if (!r.removed) {
    log.warn(
        "cannot remove the marker filter that flowd pid {}, which did not stop cleanly, left on {} "
        "(no longer configured): {}; it stays in the marker record (tc filter del dev {} egress "
        "handle 0x{:x} prio 0x{:x} bpf removes it)",
        owner, where, r.note, r.interface_now, kFilterHandle, kFilterPriority);
    return RecordedHook{r.interface_now, h.ifindex, h.created_clsact};
  }
  log.warn(
      "removed the marker filter that flowd pid {}, which did not stop cleanly, left on {} (no "
      "longer configured): {}",
      owner, where, r.note);
  return std::nullopt;
}

void clean_up_unlisted(const std::string& work_dir) {
  const std::string path = marker_record_path(work_dir);
  if (struct stat st{}; path.empty() || ::lstat(path.c_str(), &st) != 0) return;
  auto log = get_logger("backend.ebpf");
  bool busy = false;
  std::string error;
  UniqueFd lock = lock_marker_record(path, busy, error);
  if (!lock) {
    if (!busy)
      log->warn("the marker record {} a killed flowd left cannot be used: {}", path, error);
    return;  // busy: a live flowd's (another one with this work_dir), not a killed one's
  }
  if (std::size_t n = remove_stale_temporaries(path))
    log->info("removed {} temporary file(s) of the marker record a killed flowd left", n);
  auto rec = read_marker_record(path, error);
  if (!error.empty()) log->warn("ignoring the marker record {}: {}", path, error);
  if (!rec) return;
  log->warn(
      "flowd pid {} did not stop cleanly and left the marker on {} interface(s), and this "
      "configuration has no ebpf backend: removed",
      rec->pid, rec->hooks.size());
  std::vector<RecordedHook> left;
  for (const auto& h : rec->hooks)
    if (auto stays = remove_left_hook(h, rec->pid, *log)) left.push_back(std::move(*stays));
  if (left.empty()) {
    remove_marker_record(path);
    return;
  }
  rec->hooks = std::move(left);
  if (auto err = write_marker_record(path, *rec); !err.empty())
    log->warn("cannot keep what is left in the marker record: {}", err);
}

}  // namespace flowd::ebpf
