// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/firefly_route.hpp"

namespace flowd::udp_firefly {

std::string_view to_string(SuppressReason r) {
  switch (r) {
    case SuppressReason::kFlowAddress:
      return "flow_address";
    case SuppressReason::kForwardObserved:
      return "forward_observed";
    case SuppressReason::kNoCollector:
      return "no_collector";
  }
  return "?";
}

FireflyRoute route_firefly(FlowOrigin origin, const RouteOptions& options) {
  FireflyRoute r;
  switch (origin) {
    case FlowOrigin::kLocal:
      // This host's own connection: its peer is who we talk to. No collector is a choice, not a
      // suppression.
      r.to_flow = true;
      r.to_collector = options.collector;
      return r;
    case FlowOrigin::kRemote:
      // The flow's hosts had it from the sender, and one of them may be this host (a loop).
      r.flow_withheld = SuppressReason::kFlowAddress;
      r.to_collector = options.collector;
      if (!options.collector) r.collector_withheld = SuppressReason::kNoCollector;
      return r;
    case FlowOrigin::kObserved:
      // Addresses from a (spoofable) export and a label that may be chance: evidence for the
      // collector, when asked for, never a destination.
      r.flow_withheld = SuppressReason::kFlowAddress;
      if (!options.forward_observed)
        r.collector_withheld = SuppressReason::kForwardObserved;
      else if (!options.collector)
        r.collector_withheld = SuppressReason::kNoCollector;
      else
        r.to_collector = true;
      return r;
  }
  // A value outside the enum (memory gone wrong) is treated as the most restrictive origin.
  return route_firefly(FlowOrigin::kObserved, RouteOptions{});
}

}  // namespace flowd::udp_firefly
