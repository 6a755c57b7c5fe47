// SPDX-License-Identifier: Apache-2.0
// The JSON of GET /v1/status and GET /v1/flows (documented in the README, read by `flowd status`
// and `flowd flows`).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "flowd/daemon_status.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::api {

nlohmann::json status_json(const DaemonStatusReport& r, TimePoint now);
// `total`: active flows in the table (the list may be cut at the request's limit).
nlohmann::json flows_json(const std::vector<ActiveFlow>& flows, std::size_t total,
                          const ScitagsRegistry& registry);

}  // namespace flowd::api
