// SPDX-License-Identifier: Apache-2.0
// One flow event as the JSON object of one Kafka message, and the message's key.
#pragma once

#include <string>
#include <string_view>

#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::kafka {

// Appends {"state": "start|ongoing|end", "origin": "local|remote|observed", "plugin": NAME,
// "hostname": this host, "time": when sent (RFC 3339, µs), "protocol": "tcp|udp",
// "src_ip", "src_port", "dst_ip", "dst_port", "experiment", "activity" (ids), "experiment_name",
// "activity_name" (from the registry, "" when unknown), "scitag" (experiment << 6 | activity, only
// where the ids fit the flow label), "start_time" and "end_time" (RFC 3339, µs; each only when the
// event has it), and for an event relayed from another host's firefly "firefly": the firefly's JSON
// object as received (TCP details, netlink and usage, when its sender sent them)}.
void append_event_json(std::string& out, const FlowID& flow, const ScitagsRegistry& registry,
                       std::string_view hostname, TimePoint now);

// The message key: the flow's 5-tuple as text, "tcp 192.0.2.1:40000 198.51.100.7:443" (IPv6 in
// brackets), the same for every event of one flow, so Kafka's partitioner puts them in one
// partition, in order.
void append_event_key(std::string& out, const FlowID& flow);

}  // namespace flowd::kafka
