// SPDX-License-Identifier: Apache-2.0
// The addresses of this network namespace's interfaces (getifaddrs), read once at construction:
// whether a flow's end can be one of this namespace's sockets, which sock_diag can then list. A
// transfer tool in a container of its own reports flows flowd cannot see (the README's api
// advice); they are never taken for closed.
#pragma once

#include <vector>

#include "flowd/flow_id.hpp"

namespace flowd::net {

class LocalAddresses {
 public:
  LocalAddresses();
  // Whether `a` (an IPv4-mapped address as its IPv4 one) is this namespace's: an interface's
  // address, or any of 127.0.0.0/8 (a socket may be bound to 127.0.0.2 while lo lists 127.0.0.1).
  // True when the interfaces could not be read (not knowing counts as this host's).
  bool contains(const IpAddress& a) const;
  // Whether a connection between `a` and `b` can be one of this namespace's sockets: either end is
  // this namespace's. When neither is (a tool in a container of its own reports it), sock_diag
  // cannot list it here, so the lack of a socket says nothing: such a flow is taken for open by
  // every check of it (the connection check, the flow journal's restart, the marker's takeover).
  bool either_local(const IpAddress& a, const IpAddress& b) const {
    return contains(a) || contains(b);
  }

 private:
  std::vector<IpAddress> addrs_;
  bool failed_ = false;
};

// `a` without its IPv4 mapping (::ffff:a.b.c.d as a.b.c.d); other addresses as they are.
IpAddress unmapped(const IpAddress& a);

}  // namespace flowd::net
