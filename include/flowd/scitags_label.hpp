// SPDX-License-Identifier: Apache-2.0
// The Scitags IPv6 flow-label layout; the arithmetic itself lives in bpf/flowd_label.h so that the
// BPF marker and user space share one implementation.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

extern "C" {
#include "flowd_label.h"
}

namespace flowd {

inline constexpr std::uint32_t kLabelSemanticMask = FLOWD_LABEL_SEMANTIC_MASK;
inline constexpr std::uint32_t kLabelEntropyMask = FLOWD_LABEL_ENTROPY_MASK;

struct LabelTag {
  unsigned experiment;
  unsigned activity;
};

inline std::uint32_t make_label(unsigned experiment, unsigned activity, std::uint32_t entropy) {
  return flowd_make_label(experiment, activity, entropy);
}

inline LabelTag decode_label(std::uint32_t label) {
  return {flowd_label_experiment(label), flowd_label_activity(label)};
}

// Five random entropy bits, drawn once per flow start.
std::uint32_t random_label_entropy();

}  // namespace flowd
