// SPDX-License-Identifier: Apache-2.0
// The body of POST /v1/flows: one flow as a JSON object with the pipe protocol's fields, an array
// of them, or {"flows": [...]}. Fields: state, protocol, src_ip, src_port, dst_ip, dst_port, and
// either experiment and activity (ids or registry names, as on the pipe) or scitag, the combined
// integer `experiment << 6 | activity` that FTS, gfal, XRootD and curl carry (spec §5).
// Each flow is checked by the pipe's own rules (common/flow_fields.hpp), so a flow is refused for
// the same reason over either. Pure: no I/O, no logging; fuzzed by tests/fuzz/api_request_fuzz.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::api {

// Why a flow or a whole body was refused: flowd_api_rejected_flows_total{reason}. The first eight
// are np_api's reasons, by the same names.
enum class Reject : std::uint8_t {
  kFields,      // a field missing, unknown, or given twice; not an object
  kState,       // not start/end/ongoing
  kProtocol,    // not tcp/udp
  kAddress,     // not an IPv4/IPv6 address, or the unspecified one (0.0.0.0, ::, ::ffff:0.0.0.0)
  kFamily,      // source and destination of different families
  kPort,        // not an integer 0..65535
  kExperiment,  // not 0..511 or a registered experiment name
  kActivity,    // not 0..63 or an activity name of that experiment
  kScitag,      // not 0..32767, or given beside experiment/activity
  kJson,        // the body is not JSON, or not an object or an array of objects
  kTooLarge,    // the body is larger than max_body
  kTooMany,     // more flows than max_flows in one body
};
inline constexpr std::size_t kRejectCount = 12;
std::string_view to_string(Reject r);

struct FlowVerdict {
  std::optional<FlowID> flow;  // set when accepted
  Reject reason = Reject::kFields;
  std::string detail;
};

struct FlowRequest {
  bool body_ok = false;  // the body had one of the shapes; else `reason` and `detail` say why
  Reject reason = Reject::kJson;
  std::string detail;
  std::vector<FlowVerdict> flows;  // one per flow of the body, in its order
};

// Nesting deeper than this is refused (kJson) before anything is built.
inline constexpr std::size_t kMaxDepth = 8;

// `now` stamps start_time (start) or end_time (end). `max_flows`: more is kTooMany for the body.
FlowRequest parse_flow_request(std::string_view body, const ScitagsRegistry& registry,
                               TimePoint now, std::size_t max_flows);

}  // namespace flowd::api
