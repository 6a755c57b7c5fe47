// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/flow_ids.hpp"

#include <fmt/format.h>

namespace flowd::scanner {

std::vector<Tag> parse_flow_ids(const Section& cfg, const ScitagsRegistry& registry,
                                const std::string& section) {
  std::vector<Tag> ids;
  for (const auto& text : cfg.get_list("flow_ids")) {
    // Says what is wrong, as the experiment and activity keys do (a user's try, issue 15: '2:99'
    // was refused without saying that 99 is over 63).
    auto refuse = [&](const std::string& why) {
      return ConfigError(fmt::format("[{}] flow_ids: '{}': {}", section, text, why));
    };
    auto colon = text.find(':');
    if (colon == std::string::npos) throw refuse("expected EXPERIMENT:ACTIVITY (ids or names)");
    const std::string exp = text.substr(0, colon), act = text.substr(colon + 1);
    auto e = registry.experiment_id(exp);
    if (!e)
      throw refuse(fmt::format("experiment '{}' is neither 0..{} nor a registered name", exp,
                               kMaxExperiment));
    auto a = registry.activity_id(*e, act);
    if (!a)
      throw refuse(fmt::format("activity '{}' is neither 0..{} nor an activity of experiment {}",
                               act, kMaxActivity, *e));
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
