// SPDX-License-Identifier: Apache-2.0
// Two programs on the tracepoint for a moment (a reload's successor beside its predecessor, or a
// program for a changed marker map beside the old one): every state change of that overlap is in
// both ring buffers. The old ring is read first and whole, up to its program's detach; the records
// of the overlap it held are then skipped once each when the new ring hands them again. Records
// are told apart by what the state change is (socket cookie, 4-tuple, family, kind, old and new
// state), not by their time: each program reads the clock itself, so the two copies of one state
// change differ in time, and a time cut-off either lost or doubled the changes at the cut (found
// by CI: 2 of 300 connections started twice across a reload).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "flowd_conn.h"

namespace flowd::kernel {

class RingHandover {
 public:
  // The new program is about to be attached (CLOCK_BOOTTIME, ns): records of the old ring from
  // this time on may be in the new ring too. What an earlier hand-over left to skip (the old
  // program was itself the new one of a hand-over whose copies it had not all read: a reload
  // right after a reload) is skipped in the old ring now.
  void begin(std::uint64_t attach_boot_ns);
  // A record of the old ring: whether to handle it (false: a copy an earlier hand-over handled);
  // remembered when it may be in the new ring too.
  bool old_record(const flowd_conn_event& e);
  // The old program is detached and its ring read whole at `detach_boot_ns`: the new ring's
  // records after this time are in no other ring.
  void old_done(std::uint64_t detach_boot_ns);
  // Whether a record of the new ring is one the old ring handed already (then forgotten).
  bool duplicate(const flowd_conn_event& e);
  // Records remembered and not yet met again (bounded by the old rings' sizes in records).
  std::size_t pending() const { return seen_.size() + earlier_.size(); }
  // Copies skipped since construction (for the log's debug lines).
  std::uint64_t skipped() const { return skipped_; }

 private:
  using Copies = std::unordered_map<std::string, unsigned>;  // identity -> copies still to skip
  static std::string identity(const flowd_conn_event& e);
  static bool take(Copies& copies, const flowd_conn_event& e);
  std::uint64_t from_ = UINT64_MAX;  // none: no overlap
  std::uint64_t until_ = 0;
  Copies seen_;     // of the hand-over under way or last done
  Copies earlier_;  // of the one before, while the old ring is read
  std::uint64_t skipped_ = 0;
};

}  // namespace flowd::kernel
