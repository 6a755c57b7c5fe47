// SPDX-License-Identifier: Apache-2.0
// kafka: every flow event as one JSON message to a Kafka topic (librdkafka), keyed by the flow's
// 5-tuple; with `records = yes` also every record the collector plugins decode, keyed by exporter.
#pragma once

#include "flowd/component.hpp"

namespace flowd::kafka {
const BackendInfo& backend_info();
}
