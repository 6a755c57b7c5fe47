// SPDX-License-Identifier: Apache-2.0
// prometheus: serves /metrics (flowd_* self-metrics of every component, active flows by
// experiment).
#pragma once

#include "flowd/component.hpp"

namespace flowd::prometheus_backend {
const BackendInfo& backend_info();
}
