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

// Whether packets to `dst` can carry a flow label: IPv6, and not IPv4-mapped (::ffff:a.b.c.d is an
// IPv4 destination on the wire, RFC 4291 2.5.5.2; the kernel plugin reports such sockets as IPv4).
inline bool carries_flow_label(const IpAddress& dst) {
  static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return dst.is_v6() && !std::equal(kMapped.begin(), kMapped.end(), dst.bytes.begin());
}

}  // namespace flowd::ebpf
