// SPDX-License-Identifier: Apache-2.0
// Process ownership's tags, shared by the iperf and kernel plugins: the `flow_ids` and `process`
// keys, the EXPERIMENT:ACTIVITY pairs `flow_ids` lists, and the draw that gives each owned
// connection one of them (kept by the tracker for its end).
#pragma once

#include <array>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "flowd/config.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/scanner/connection_tracker.hpp"

namespace flowd::scanner {

// The `flow_ids` and `process` rows: `process_default` is the comm matched when the key is not
// set ("" = ownership off), `process_help` what the key does in that plugin.
constexpr std::array<KeySpec, 2> owner_keys(std::string_view process_default,
                                            std::string_view process_help,
                                            std::string_view legacy_flow_ids) {
  return {{
      {"flow_ids", KeyType::kList, "2:9, 2:19, 3:3, 3:4, 4:3, 4:4, 5:10, 5:14",
       "EXPERIMENT:ACTIVITY pairs (ids or names); each connection gets one, kept for its end",
       legacy_flow_ids},
      {"process", KeyType::kString, process_default, process_help},
  }};
}

// The pairs of `flow_ids` ("2:9", "cms:Cache"), in order. Throws ConfigError("[section] flow_ids:
// ...") for an entry that is not EXPERIMENT:ACTIVITY of `registry`, or when there is none.
std::vector<Tag> parse_flow_ids(const Section& cfg, const ScitagsRegistry& registry,
                                const std::string& section);

// Draws one of the pairs, uniformly at random, for each new connection.
class FlowIdDraw {
 public:
  explicit FlowIdDraw(std::vector<Tag> ids);  // `ids` not empty (parse_flow_ids)
  Tag draw();
  const std::vector<Tag>& ids() const { return ids_; }

 private:
  std::vector<Tag> ids_;
  std::mt19937 rng_;
};

}  // namespace flowd::scanner
