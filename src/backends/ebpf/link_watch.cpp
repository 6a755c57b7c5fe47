// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/link_watch.hpp"

#include <fnmatch.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <vector>

#include "backends/ebpf/tc_attachment.hpp"

namespace flowd::ebpf {

LinkWatch::LinkWatch() {
  nl_ = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!nl_) throw std::system_error(errno, std::generic_category(), "rtnetlink socket");
  // The legacy group bits name RTNLGRP_LINK (1), RTNLGRP_TC (4) and RTNLGRP_IPV6_IFADDR (9).
  if (mnl_socket_bind(nl_, RTMGRP_LINK | RTMGRP_TC | RTMGRP_IPV6_IFADDR, MNL_SOCKET_AUTOPID) != 0) {
    int err = errno;
    mnl_socket_close(nl_);
    throw std::system_error(err, std::generic_category(),
                            "rtnetlink bind (link, traffic control, IPv6 address)");
  }
}

LinkWatch::~LinkWatch() {
  mnl_socket_close(nl_);
}

int LinkWatch::fd() const {
  return mnl_socket_get_fd(nl_);
}

bool LinkWatch::drain() {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  bool changed = false;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return changed;
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // notifications lost: list again
        changed = true;
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "rtnetlink recv");
    }
    auto len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(h, len);
         h = mnl_nlmsg_next(h, &len))
      switch (h->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
        case RTM_NEWADDR:
        case RTM_DELADDR:
        case RTM_DELQDISC:  // a clsact removed takes the marker's filter with it
        case RTM_DELTFILTER:
          changed = true;
          break;
        default:
          break;
      }
  }
}

bool is_interface_pattern(const std::string& entry) {
  return entry.find_first_of("*?[") != std::string::npos;
}

std::vector<MarkedInterface> interfaces_to_mark(const std::vector<std::string>& configured) {
  std::vector<MarkedInterface> out;
  if (configured.empty()) {
    for (const auto& name : interfaces_with_global_ipv6())
      if (unsigned index = ::if_nametoindex(name.c_str()))
        out.emplace_back(name, static_cast<int>(index));
  } else if (struct if_nameindex* all = ::if_nameindex()) {
    for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
      const std::string name = i->if_name;
      const bool wanted = std::any_of(configured.begin(), configured.end(), [&](const auto& c) {
        if (!is_interface_pattern(c)) return c == name;
        return name != "lo" && ::fnmatch(c.c_str(), name.c_str(), 0) == 0;
      });
      if (wanted) out.emplace_back(name, static_cast<int>(i->if_index));
    }
    ::if_freenameindex(all);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace flowd::ebpf
