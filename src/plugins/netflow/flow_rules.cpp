// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/flow_rules.hpp"

#include <charconv>
#include <sstream>

namespace flowd::netflow {

std::optional<FlowRule> parse_rule(const std::string& text, const ScitagsRegistry& reg,
                                   std::string& error) {
  std::istringstream in(text);
  std::string where, exp, act, extra;
  if (!(in >> where >> exp >> act) || (in >> extra)) {
    error = "expected 'PREFIX[:PORT] EXPERIMENT ACTIVITY'";
    return std::nullopt;
  }
  FlowRule r;
  auto slash = where.find('/');
  if (slash == std::string::npos) {
    error = "prefix '" + where + "' needs a /length";
    return std::nullopt;
  }
  std::string len_port = where.substr(slash + 1);
  std::string len_text = len_port, port_text;
  if (auto colon = len_port.find(':'); colon != std::string::npos) {
    len_text = len_port.substr(0, colon);
    port_text = len_port.substr(colon + 1);
  }
  std::string why;
  auto prefix = net::parse_network(where.substr(0, slash) + "/" + len_text, why);
  if (!prefix) {
    error = "prefix '" + where + "' " + why;
    return std::nullopt;
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [pp, pec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (pec != std::errc() || pp != port_text.data() + port_text.size() || port > 65535) {
      error = "bad port '" + port_text + "'";
      return std::nullopt;
    }
    r.port = static_cast<std::uint16_t>(port);
  }
  auto e = reg.experiment_id(exp);
  auto a = e ? reg.activity_id(*e, act) : std::nullopt;
  if (!e || !a) {
    error = "unknown experiment/activity '" + exp + " " + act + "'";
    return std::nullopt;
  }
  r.prefix = *prefix;
  r.experiment = *e;
  r.activity = *a;
  return r;
}

const FlowRule* match_rule(const std::vector<FlowRule>& rules, const FlowID& flow) {
  for (const auto& r : rules) {
    bool src = r.prefix.contains(flow.src) && (!r.port || *r.port == flow.src_port);
    bool dst = r.prefix.contains(flow.dst) && (!r.port || *r.port == flow.dst_port);
    if (src || dst) return &r;
  }
  return nullptr;
}

}  // namespace flowd::netflow
