// SPDX-License-Identifier: Apache-2.0
// `flowd decode [--hex] [--apply-sampling] FILE|-`: decode NetFlow/IPFIX and sFlow v5 exports
// offline, one JSON line per record (per flow sample for sFlow).
#pragma once

#include <string>
#include <vector>

namespace flowd {
int decode_command(const std::vector<std::string>& args);
}
