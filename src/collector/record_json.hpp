// SPDX-License-Identifier: Apache-2.0
// JSON form of a decoded NetFlow/IPFIX record (for `flowd decode` and logging by callers).
#pragma once

#include <nlohmann/json.hpp>

#include "collector/flow_record.hpp"

namespace flowd::collector {

// {"time": received (ISO 8601), "exporter": "ip:port", "version": N, "domain": N, "template": N,
//  "options": bool, "fields": {IANA name: value}}. Addresses as text, MACs as aa:bb:cc:dd:ee:ff,
// integers as numbers, dateTime as ISO 8601, strings as strings (invalid UTF-8 replaced by U+FFFD),
// other octets as lowercase hex. A repeated element becomes an array of its values. sFlow records
// (FlowRecord::protocol kSflow) also carry "protocol": "sflow"; NetFlow/IPFIX ones have no such
// key.
nlohmann::json to_json(const FlowRecord& record);
nlohmann::json to_json(const FieldValue& value);

}  // namespace flowd::collector
