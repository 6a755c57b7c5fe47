// SPDX-License-Identifier: Apache-2.0
// Which commit this binary was built from: written at build time by cmake/FlowdBuildInfo.cmake
// (a definition instead of a -D flag, so that a commit does not recompile the whole core).
#pragma once

namespace flowd {

extern const char* const kBuildCommit;  // `git rev-parse --short=12 HEAD`, or "unknown"

}  // namespace flowd
