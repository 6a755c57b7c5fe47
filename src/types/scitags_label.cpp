// SPDX-License-Identifier: Apache-2.0
#include <random>

#include "flowd/scitags_label.hpp"

namespace flowd {

std::uint32_t random_label_entropy() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<std::uint32_t>(rng()) & kLabelEntropyMask;
}

}  // namespace flowd
