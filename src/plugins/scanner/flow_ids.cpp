// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/flow_ids.hpp"

namespace flowd::scanner {

std::vector<Tag> parse_flow_ids(const Section& cfg, const ScitagsRegistry& registry,
                                const std::string& section) {
  std::vector<Tag> ids;
  for (const auto& text : cfg.get_list("flow_ids")) {
    auto colon = text.find(':');
    auto e =
        colon == std::string::npos ? std::nullopt : registry.experiment_id(text.substr(0, colon));
    auto a = e ? registry.activity_id(*e, text.substr(colon + 1)) : std::nullopt;
    if (!a)
      throw ConfigError("[" + section + "] flow_ids: '" + text +
                        "': expected EXPERIMENT:ACTIVITY (ids or names)");
    ids.push_back({static_cast<std::uint16_t>(*e), static_cast<std::uint16_t>(*a)});
  }
  if (ids.empty())
    throw ConfigError("[" + section +
                      "] flow_ids: at least one EXPERIMENT:ACTIVITY pair is needed");
  return ids;
}

FlowIdDraw::FlowIdDraw(std::vector<Tag> ids) : ids_(std::move(ids)), rng_(std::random_device{}()) {
  if (ids_.empty()) ids_.push_back({});
}

Tag FlowIdDraw::draw() {
  return ids_[std::uniform_int_distribution<std::size_t>(0, ids_.size() - 1)(rng_)];
}

}  // namespace flowd::scanner
