// SPDX-License-Identifier: Apache-2.0
// Validation of fireflies against docs/firefly.schema.json with a real JSON-schema validator
// (python3-jsonschema from Debian, through tests/schema/validate_fireflies.py).
#pragma once

#include <string>
#include <vector>

#include "harness.hpp"

namespace flowd::test {

// "" when every datagram is valid; else the validator's report. Datagrams must not contain '\n'.
inline std::string firefly_schema_errors(const std::vector<std::string>& datagrams,
                                         const std::string& schema = std::string(FLOWD_SOURCE_DIR) +
                                                                     "/docs/firefly.schema.json") {
  std::string input;
  for (const auto& d : datagrams) input += d + "\n";
  std::string out;
  int rc = run_shell(std::string("/usr/bin/python3 ") + FLOWD_SOURCE_DIR +
                         "/tests/schema/validate_fireflies.py " + schema,
                     input, out);
  return rc == 0 ? ""
                 : (out.empty() ? "validator failed with exit code " + std::to_string(rc) : out);
}

}  // namespace flowd::test
