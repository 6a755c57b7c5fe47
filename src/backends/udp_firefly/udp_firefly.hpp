// SPDX-License-Identifier: Apache-2.0
// udp_firefly: one UDP "firefly" per flow event to the flow's destination (and a copy to a
// collector).
#pragma once

#include "flowd/component.hpp"

namespace flowd::udp_firefly {
const BackendInfo& backend_info();
}
