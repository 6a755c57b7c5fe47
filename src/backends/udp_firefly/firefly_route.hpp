// SPDX-License-Identifier: Apache-2.0
// Where a flow's firefly goes, decided by the flow's origin alone. The rule above all others: flowd
// never sends a datagram to an address it read from a router's export (observed) or from another
// host's firefly (remote). Local flows go to their peer and the collector, as the original did;
// remote ones to the collector only (the relay); observed ones to the collector only, and only with
// forward_observed = yes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "flowd/flow_id.hpp"

namespace flowd::udp_firefly {

// Why a firefly was not sent to a destination (label `reason` of flowd_fireflies_suppressed_total).
enum class SuppressReason : std::uint8_t {
  kFlowAddress,      // remote and observed flows never go to the flow's addresses
  kForwardObserved,  // an observed flow, and forward_observed = no
  kNoCollector,      // a flow that may only go to the collector, and none is set
};
inline constexpr std::size_t kSuppressReasons = 3;
std::string_view to_string(SuppressReason r);

struct RouteOptions {
  bool collector = false;         // `collector` is set
  bool forward_observed = false;  // `forward_observed = yes`
};

struct FireflyRoute {
  bool to_flow = false;       // the flow's destination address, on `port`
  bool to_collector = false;  // `collector`
  // Set when the origin, not the configuration of a local flow, kept a destination from a firefly.
  std::optional<SuppressReason> flow_withheld;
  std::optional<SuppressReason> collector_withheld;
  bool sends() const { return to_flow || to_collector; }
};

FireflyRoute route_firefly(FlowOrigin origin, const RouteOptions& options);

}  // namespace flowd::udp_firefly
