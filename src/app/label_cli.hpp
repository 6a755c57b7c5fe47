// SPDX-License-Identifier: Apache-2.0
// `flowd label encode EXP ACT` and `flowd label decode LABEL`.
#pragma once

#include <string>
#include <vector>

namespace flowd {
// Returns the exit code; output on stdout, errors on stderr.
int label_command(const std::vector<std::string>& args);
}  // namespace flowd
