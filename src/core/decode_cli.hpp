// SPDX-License-Identifier: Apache-2.0
// `flowd decode [--hex] FILE|-`: decode NetFlow/IPFIX exports offline, one JSON line per record.
#pragma once

#include <string>
#include <vector>

namespace flowd {
int decode_command(const std::vector<std::string>& args);
}
