// SPDX-License-Identifier: Apache-2.0
// Tags for exported flows that carry no Scitags flow label: `PREFIX[:PORT] EXPERIMENT ACTIVITY`
// rules.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/net/prefix.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::netflow {

struct FlowRule {
  net::Prefix prefix;
  std::optional<std::uint16_t> port;
  unsigned experiment = 0, activity = 0;
};

// Parses one rule; nullopt and `error` set when it is malformed or names are unknown.
std::optional<FlowRule> parse_rule(const std::string& text, const ScitagsRegistry& reg,
                                   std::string& error);
// The first rule matching either end of the flow (address in prefix, and port on that end if
// given).
const FlowRule* match_rule(const std::vector<FlowRule>& rules, const FlowID& flow);

}  // namespace flowd::netflow
