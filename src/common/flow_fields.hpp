// SPDX-License-Identifier: Apache-2.0
// The fields of one flow as a transfer service reports it (np_api's pipe line, the api plugin's
// JSON object), checked one way for both: the same rules, the same reasons, so that a flow the pipe
// refuses is refused over HTTP for the same reason. Pure: no I/O, no logging.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd {

// Why a flow's fields were refused. Each reporter maps these onto the reasons its counter names
// (np_api: flowd_np_api_rejected_lines_total, api: flowd_api_rejected_flows_total), which share
// the names below.
enum class FlowFieldError : std::uint8_t {
  kState,       // not start/end/ongoing
  kProtocol,    // not tcp/udp
  kAddress,     // not an IPv4/IPv6 address, or the unspecified one (0.0.0.0, ::, ::ffff:0.0.0.0)
  kFamily,      // source and destination of different families
  kPort,        // not an integer 0..65535
  kExperiment,  // not 0..511 or a registered experiment name
  kActivity,    // not 0..63 or an activity name of that experiment
};

// The text of each field, as written by the reporter. Experiment and activity are an id or a name
// ('_' stands for ' ': "Data_Challenge"); names are looked up in the registry.
struct FlowFields {
  std::string_view state;
  std::string_view protocol;
  std::string_view src;
  std::string_view src_port;
  std::string_view dst;
  std::string_view dst_port;
  std::string_view experiment;
  std::string_view activity;
};

struct FlowFieldsResult {
  std::optional<FlowID> flow;  // set when every field was good
  FlowFieldError error = FlowFieldError::kState;
  std::string detail;  // what was wrong, for the log line and the HTTP answer
};

// Builds the flow (origin local: a transfer service on this host reports its own connection).
// `now` stamps start_time (start) or end_time (end).
FlowFieldsResult parse_flow_fields(const FlowFields& fields, const ScitagsRegistry& registry,
                                   TimePoint now);

// The combined Scitags integer that FTS, gfal, XRootD and curl carry (`scitag = experiment << 6 |
// activity`, spec §5): 0..32767, or nullopt.
struct ScitagPair {
  unsigned experiment;
  unsigned activity;
};
std::optional<ScitagPair> split_scitag(std::int64_t scitag);

}  // namespace flowd
