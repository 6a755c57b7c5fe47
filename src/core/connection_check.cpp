// SPDX-License-Identifier: Apache-2.0
#include "core/connection_check.hpp"

#include <system_error>

#include "netlink/sock_diag.hpp"

namespace flowd {

OpenConnectionCheck::OpenConnectionCheck() = default;
OpenConnectionCheck::~OpenConnectionCheck() = default;

bool OpenConnectionCheck::operator()(const FlowID& start, std::uint64_t* cookie) {
  if (cookie) *cookie = 0;
  if (start.protocol != Protocol::kTcp || unavailable_) return true;
  // Neither end in this network namespace (a tool in a container of its own, through the api):
  // its socket cannot be listed here, so it cannot be known closed (try15g 2).
  const auto now = std::chrono::steady_clock::now();
  if (!local_ || now - local_read_ > std::chrono::seconds(1)) {
    local_.emplace();
    local_read_ = now;
  }
  if (!local_->either_local(start.src, start.dst)) return true;
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
  // Only a socket of this direction: the other is the peer's, a socket of its own (a connection
  // of two local ends), whose cookie says nothing of the socket `start` followed.
  if (found && cookie && netlink::carries_data(e.state, e.inode)) *cookie = e.cookie;
  if (!found) {
    found = diag_->lookup(start.dst, start.dst_port, start.src, start.src_port, e, d);
    failed = failed || (!found && diag_->lookup_failed());
  }
  if (!found) return failed;
  return netlink::carries_data(e.state, e.inode);
}

}  // namespace flowd
