// SPDX-License-Identifier: Apache-2.0
#include "plugins/kernel/ring_handover.hpp"

#include <cstring>

namespace flowd::kernel {

namespace {
// A new ring's record stamped this long after the old program's detach cannot be a copy: the
// table of the overlap is dropped then (the two programs' clocks differ by far less).
constexpr std::uint64_t kSettleNs = 1'000'000'000;
}  // namespace

std::string RingHandover::identity(const flowd_conn_event& e) {
  std::string id;
  id.reserve(sizeof e.cookie + sizeof e.local_addr + sizeof e.remote_addr + 9);
  auto put = [&id](const void* p, std::size_t n) { id.append(static_cast<const char*>(p), n); };
  put(&e.cookie, sizeof e.cookie);
  put(e.local_addr, sizeof e.local_addr);
  put(e.remote_addr, sizeof e.remote_addr);
  put(&e.local_port, sizeof e.local_port);
  put(&e.remote_port, sizeof e.remote_port);
  put(&e.family, sizeof e.family);
  put(&e.kind, sizeof e.kind);
  put(&e.oldstate, sizeof e.oldstate);
  put(&e.newstate, sizeof e.newstate);
  return id;
}

bool RingHandover::take(Copies& copies, const flowd_conn_event& e) {
  auto it = copies.find(identity(e));
  if (it == copies.end()) return false;
  if (--it->second == 0) copies.erase(it);
  return true;  // counted by the callers
}

void RingHandover::begin(std::uint64_t attach_boot_ns) {
  earlier_ = std::move(seen_);
  seen_.clear();
  from_ = attach_boot_ns;
  until_ = UINT64_MAX;  // the old ring is still being read
}

bool RingHandover::old_record(const flowd_conn_event& e) {
  if (!earlier_.empty() && take(earlier_, e)) {
    ++skipped_;
    return false;
  }
  if (e.ts_boot_ns >= from_) ++seen_[identity(e)];
  return true;
}

void RingHandover::old_done(std::uint64_t detach_boot_ns) {
  earlier_.clear();  // the old ring is read whole: what is left there was never doubled
  until_ = detach_boot_ns;
  if (seen_.empty()) from_ = UINT64_MAX;
}

bool RingHandover::duplicate(const flowd_conn_event& e) {
  if (from_ == UINT64_MAX) return false;
  if (e.ts_boot_ns > until_ && e.ts_boot_ns - until_ > kSettleNs) {
    seen_.clear();  // what is left was never doubled (the new program attached after it)
    from_ = UINT64_MAX;
    return false;
  }
  if (!take(seen_, e)) return false;
  ++skipped_;
  if (seen_.empty()) from_ = UINT64_MAX;
  return true;
}

}  // namespace flowd::kernel
