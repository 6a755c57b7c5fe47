// SPDX-License-Identifier: Apache-2.0
// Which flows the marker may act on. Marking changes this host's packets, so it follows only what
// this host saw itself: a flow learnt from another host's firefly or from a router's export is
// never marked, and its end never removes a mark.
#pragma once

#include "flowd/flow_id.hpp"

namespace flowd::ebpf {

constexpr bool marks(FlowOrigin origin) {
  return origin == FlowOrigin::kLocal;
}

}  // namespace flowd::ebpf
