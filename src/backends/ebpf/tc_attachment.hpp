// SPDX-License-Identifier: Apache-2.0
// One interface's clsact egress hook with flowd's filter on it. Only the filter flowd attached is
// removed at stop, and the clsact qdisc only if flowd created it (this process, or a killed flowd
// whose filter it replaced) and no other filter uses it.
#pragma once

#include <string>
#include <vector>

namespace flowd::ebpf {

// flowd's filter is recognised by this handle and priority, so a stale one left by a killed flowd
// is replaced at start instead of a second one being added.
inline constexpr unsigned kFilterHandle = 0xF10D;
inline constexpr unsigned kFilterPriority = 0xF10D;

class TcAttachment {
 public:
  TcAttachment(const std::string& interface, int prog_fd);  // throws std::runtime_error
  ~TcAttachment();
  TcAttachment(const TcAttachment&) = delete;
  TcAttachment& operator=(const TcAttachment&) = delete;
  const std::string& interface() const { return interface_; }
  bool created_qdisc() const { return created_qdisc_; }

 private:
  std::string interface_;
  int ifindex_;
  bool created_qdisc_ = false;
  bool replaced_stale_ = false;  // a killed flowd's filter was there at start
};

// Interfaces with an IPv6 address that is neither loopback nor link-local.
std::vector<std::string> interfaces_with_global_ipv6();

}  // namespace flowd::ebpf
