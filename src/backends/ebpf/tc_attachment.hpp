// SPDX-License-Identifier: Apache-2.0
// One interface's clsact egress hook with flowd's filter on it. Only the filter flowd attached is
// removed at stop, and the clsact qdisc only if flowd created it (this process, or — as the marker
// record in work_dir says — the killed flowd whose filter it replaced) and no other filter uses it.
// A clsact flowd found without a record that it created it (the admin's) is never removed.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace flowd::ebpf {

// flowd's filter is recognised by this handle and priority, so a stale one left by a killed flowd
// is replaced at start instead of a second one being added.
inline constexpr unsigned kFilterHandle = 0xF10D;
inline constexpr unsigned kFilterPriority = 0xF10D;

class TcAttachment {
 public:
  // Attaches `prog_fd` to the interface's egress, creating the clsact qdisc if there is none.
  // `recorded_created`: what the marker record of a flowd that did not stop cleanly says about this
  // interface (did it create the clsact?); nullopt when there is no record of it. Throws
  // std::runtime_error.
  TcAttachment(const std::string& interface, int prog_fd,
               std::optional<bool> recorded_created = std::nullopt);
  ~TcAttachment();  // detaches; removes the clsact if flowd created it and nothing else uses it
  TcAttachment(const TcAttachment&) = delete;
  TcAttachment& operator=(const TcAttachment&) = delete;

  // Puts `prog_fd` in place of the attached program in the same filter (tc filter replace, same
  // handle and priority): the kernel swaps them at once, so no packet passes unmarked in between
  // (a reload's hand-over). When the filter is gone (somebody deleted it, or the clsact qdisc
  // under it), the clsact is made again if needed and the filter added, with a warning. Throws
  // std::runtime_error; the old program stays attached then.
  void replace(int prog_fd);

  // Whether flowd's filter is still on the interface's egress (false when somebody removed it or
  // the clsact, or the kernel could not be asked).
  bool present() const;

  const std::string& interface() const { return interface_; }
  int ifindex() const { return ifindex_; }
  bool created_qdisc() const { return created_qdisc_; }
  // Why the marker leaves the interface, for the line the destructor logs ("renamed to X, which
  // interfaces does not select"); a deleted interface says so itself.
  void set_detach_reason(std::string why) { detach_reason_ = std::move(why); }

 private:
  std::string interface_;
  int ifindex_;
  bool created_qdisc_ = false;
  std::string detach_reason_;
};

// Whether flowd's filter (kFilterHandle, kFilterPriority) is on the egress of interface `ifindex`:
// 1 yes, 0 no (no such interface, no clsact, no such filter), -1 the kernel could not be asked.
int has_marker_filter(int ifindex);

// Whether interface `ifindex` has a clsact qdisc: 1 yes, 0 no, -1 the kernel could not be asked.
int has_clsact(int ifindex);

inline constexpr const char* kNoMarkerFilter = "no marker filter there any more";
inline constexpr const char* kEmptyClsactRemoved =
    "no marker filter (it was killed before its filter went on); the clsact it made, with no "
    "filter on it, removed";

struct RemovedHook {
  std::string interface_now;  // the interface's name now (empty when it is gone)
  std::string note;           // for the log: "clsact removed", "clsact kept: ...", "interface gone"
  bool removed = false;       // no flowd filter is on it any more (checked after the removal)
};

// Removes flowd's filter from the interface with index `ifindex` — by index, so a link renamed
// since is found — and the clsact with it when `created_clsact` and no other filter uses it: what a
// flowd killed with -9 left on an interface no longer configured. Nothing is touched when the
// interface has no flowd filter (gone, or the index now names another interface), except a clsact
// with no filter at all when `created_clsact`: the record is written before the clsact is made, so
// a flowd killed before its filter went on left it empty (try15h D6).
RemovedHook remove_marker_hook(int ifindex, bool created_clsact);

// Interfaces with an IPv6 address that is neither loopback nor link-local.
std::vector<std::string> interfaces_with_global_ipv6();

}  // namespace flowd::ebpf
