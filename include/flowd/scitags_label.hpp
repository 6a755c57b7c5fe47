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

// The combined integer transfer tools carry (FTS and gfal `--scitag`, XRootD `scitag.flow=`, the
// HTTP `SciTag:` header): experiment << 6 | activity, so 144 is experiment 2 (atlas), activity 16.
// Source: the Scitags technical specification, as summarised in the shared spec (flowd.md).
inline constexpr unsigned kScitagMax = (511u << 6) | 63u;  // 32767

// experiment 0..511, activity 0..63 (higher bits are dropped, as make_label does).
inline constexpr unsigned make_scitag(unsigned experiment, unsigned activity) {
  return ((experiment & 0x1FFu) << 6) | (activity & 0x3Fu);
}

// nullopt above kScitagMax (no 9-bit experiment).
inline constexpr std::optional<LabelTag> decode_scitag(unsigned long scitag) {
  if (scitag > kScitagMax) return std::nullopt;
  return LabelTag{static_cast<unsigned>(scitag >> 6), static_cast<unsigned>(scitag & 0x3Fu)};
}

// Five random entropy bits, drawn once per flow start.
std::uint32_t random_label_entropy();

}  // namespace flowd
