#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The test command of the README: installs what the build and the tests need (Debian packages),
# builds with warnings as errors (FLOWD_WERROR is on by default in a git checkout), and runs the
# whole suite (unit, integration and, as root, privileged tests). It configures BUILD_DIR with the
# same options as the README's start command, so an existing build is reused, not recompiled.
# Usage, as root: ./scripts/test.sh [BUILD_DIR] [extra cmake -D options...]
# FLOWD_CTEST_ARGS: more ctest arguments (CI's sanitizer run leaves out `-LE source`: the tests that
# check the source tree, not the code the build made).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
bash scripts/packages.sh install build test  # uses sudo when not root
[ "$(id -u)" -eq 0 ] || echo "not root: privileged tests will skip" >&2
cmake -S . -B "$build" "$@"
cmake --build "$build" -j"$(nproc)"
# shellcheck disable=SC2086 # FLOWD_CTEST_ARGS is a list of arguments
ctest --test-dir "$build" --output-on-failure -j2 --timeout 300 ${FLOWD_CTEST_ARGS:-}
