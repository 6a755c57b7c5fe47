// SPDX-License-Identifier: Apache-2.0
// The kernel's notifications that interfaces or their IPv6 addresses changed, or that a qdisc or
// filter was removed (rtnetlink groups RTNLGRP_LINK, RTNLGRP_IPV6_IFADDR and RTNLGRP_TC, libmnl),
// so that the marker follows interfaces that appear or go after start, and attaches again where
// somebody removed its filter or clsact. Only whether something changed is read, not what: the
// marker then lists the interfaces again (interfaces_to_mark) and attaches or detaches the
// difference, which also repairs notifications the kernel dropped (ENOBUFS).
#pragma once

#include <string>
#include <utility>
#include <vector>

struct mnl_socket;

namespace flowd::ebpf {

class LinkWatch {
 public:
  // Subscribes (a non-blocking NETLINK_ROUTE socket). Throws std::system_error.
  LinkWatch();
  ~LinkWatch();
  LinkWatch(const LinkWatch&) = delete;
  LinkWatch& operator=(const LinkWatch&) = delete;

  // Readable (poll/epoll) when notifications wait.
  int fd() const;
  // Reads every waiting notification. True when a link or an IPv6 address was added, changed or
  // removed, a qdisc or a filter was removed, or when the kernel dropped notifications (the
  // socket's buffer was full): the caller lists the interfaces again. Throws std::system_error on
  // other errors.
  bool drain();

 private:
  mnl_socket* nl_ = nullptr;
};

// One interface to mark: its name and index.
using MarkedInterface = std::pair<std::string, int>;

// The interfaces `configured` selects now: each name that exists, each shell pattern's matches
// (fnmatch: '*', '?', '[...]'; loopback never); every interface with a global IPv6 address (not
// loopback, not link-local) when `configured` is empty. Sorted by name, no duplicates.
std::vector<MarkedInterface> interfaces_to_mark(const std::vector<std::string>& configured);

// Whether a configured entry is a pattern (has '*', '?' or '[') rather than a name.
bool is_interface_pattern(const std::string& entry);

}  // namespace flowd::ebpf
