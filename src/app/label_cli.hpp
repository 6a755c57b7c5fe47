// SPDX-License-Identifier: Apache-2.0
// `flowd label encode EXP ACT`, `flowd label decode LABEL` and `flowd label scitag SCITAG`: the
// Scitags IPv6 flow label and the combined scitag integer (experiment << 6 | activity) of transfer
// tools, named from the built-in registry snapshot.
#pragma once

#include <string>
#include <vector>

namespace flowd {

struct LabelOutput {
  int code = 0;     // 0, or 2 for a usage error
  std::string out;  // for stdout
  std::string err;  // for stderr
};
// The command's work, without printing (unit tests call it).
LabelOutput run_label_command(const std::vector<std::string>& args);

}  // namespace flowd
