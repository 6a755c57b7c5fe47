// SPDX-License-Identifier: Apache-2.0
// Which flows the marker may act on. Marking changes this host's packets, so it follows only what
// this host saw itself: a flow learnt from another host's firefly or from a router's export is
// never marked, and its end never removes a mark.
#pragma once

#include <algorithm>
#include <array>

#include "flowd/flow_id.hpp"

namespace flowd::ebpf {

constexpr bool marks(FlowOrigin origin) {
  return origin == FlowOrigin::kLocal;
}

// Whether an address is IPv6 on the wire: not IPv4, and not IPv4-mapped (::ffff:a.b.c.d is IPv4
// on the wire, RFC 4291 2.5.5.2; the kernel plugin reports such sockets as IPv4).
inline bool ipv6_on_the_wire(const IpAddress& a) {
  static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return a.is_v6() && !std::equal(kMapped.begin(), kMapped.end(), a.bytes.begin());
}

// Whether a flow's packets can carry a flow label: both ends IPv6 on the wire. A flow announced
// with one end IPv4-mapped and the other native IPv6 names no socket that exists (a socket's two
// ends are of one family), and its key (the peer and the ports) would label another flow's packets.
template <class Flow>
bool carries_flow_label(const Flow& flow) {
  return ipv6_on_the_wire(flow.src) && ipv6_on_the_wire(flow.dst);
}

}  // namespace flowd::ebpf
