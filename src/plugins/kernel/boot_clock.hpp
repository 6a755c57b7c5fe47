// SPDX-License-Identifier: Apache-2.0
// Kernel timestamps (CLOCK_BOOTTIME, bpf_ktime_get_boot_ns) as wall-clock time: the offset between
// the two clocks is read once per batch, so an event's time is as exact as the wall clock's.
#pragma once

#include <time.h>

#include <cstdint>

#include "flowd/flow_id.hpp"

namespace flowd::kernel {

class BootClock {
 public:
  // Reads CLOCK_REALTIME - CLOCK_BOOTTIME now (call before each batch: the wall clock may step).
  void refresh() {
    timespec real{}, boot{};
    ::clock_gettime(CLOCK_REALTIME, &real);
    ::clock_gettime(CLOCK_BOOTTIME, &boot);
    offset_ns_ = (static_cast<std::int64_t>(real.tv_sec) - boot.tv_sec) * 1000000000 +
                 (real.tv_nsec - boot.tv_nsec);
  }
  TimePoint wall(std::uint64_t boot_ns) const {
    auto ns = std::chrono::nanoseconds(static_cast<std::int64_t>(boot_ns) + offset_ns_);
    return TimePoint(std::chrono::duration_cast<Clock::duration>(ns));
  }

 private:
  std::int64_t offset_ns_ = 0;
};

}  // namespace flowd::kernel
