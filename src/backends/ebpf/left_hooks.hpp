// SPDX-License-Identifier: Apache-2.0
// The filters a killed flowd's marker left (its marker record, marker_record.hpp): removed by the
// next marker for the interfaces it does not mark, and by a start without the ebpf backend for all
// of them, so that a flowd killed with -9 and started again without `ebpf` does not leave a
// program labelling packets from a map nobody updates (try16b F1).
#pragma once

#include <spdlog/logger.h>
#include <sys/types.h>

#include <optional>
#include <string>

#include "backends/ebpf/marker_record.hpp"

namespace flowd::ebpf {

// Removes the hook `h` of the record of flowd `owner` (killed) from its interface, with the clsact
// when that flowd created it and nothing else uses it; logs what became of it. Left alone when a
// live flowd marks the interface. Returns the hook as it stays (to keep in the record) when it
// could not be removed, nullopt when it is gone or nothing was there.
std::optional<RecordedHook> remove_left_hook(const RecordedHook& h, pid_t owner,
                                             spdlog::logger& log);

// At a start whose configuration has no ebpf backend: every hook in the record a killed flowd left
// in `work_dir` (this network namespace's) is removed, and the record with it (kept with what
// could not be removed). Nothing when work_dir is empty, there is no record, or a live flowd holds
// its lock.
void clean_up_unlisted(const std::string& work_dir);

}  // namespace flowd::ebpf
