// SPDX-License-Identifier: Apache-2.0
// api: a local HTTP API. POST /v1/flows reports flows as np_api's pipe does (origin local);
// GET /v1/flows lists the active flows, GET /v1/status what runs (flowd/daemon_status.hpp).
#pragma once

#include "flowd/component.hpp"

namespace flowd::api {
const PluginInfo& plugin_info();
}
