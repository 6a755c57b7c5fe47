// SPDX-License-Identifier: Apache-2.0
#include "core/connection_check.hpp"

#include <system_error>

#include "netlink/sock_diag.hpp"

namespace flowd {

OpenConnectionCheck::OpenConnectionCheck() = default;
OpenConnectionCheck::~OpenConnectionCheck() = default;

bool OpenConnectionCheck::operator()(const FlowID& start) {
  if (start.protocol != Protocol::kTcp || unavailable_) return true;
  if (!diag_) {
    try {
      diag_ = std::make_unique<netlink::SockDiag>();
    } catch (const std::system_error&) {
      unavailable_ = true;  // no netlink socket (a sandbox): hand back as before
      return true;
    }
  }
  netlink::SockEntry e;
  netlink::TcpDetails d;
  // The inferring plugins name this host's end first; np_api's order is the caller's.
  bool found = diag_->lookup(start.src, start.src_port, start.dst, start.dst_port, e, d);
  bool failed = !found && diag_->lookup_failed();
  if (!found) {
    found = diag_->lookup(start.dst, start.dst_port, start.src, start.src_port, e, d);
    failed = failed || (!found && diag_->lookup_failed());
  }
  if (!found) return failed;
  return netlink::carries_data(e.state, e.inode);
}

}  // namespace flowd
