// SPDX-License-Identifier: Apache-2.0
// "1 connection", "2 connections": a count and its noun, in the singular for one, for log lines
// and the messages of the command line.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace flowd {

inline std::string counted(std::size_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace flowd
