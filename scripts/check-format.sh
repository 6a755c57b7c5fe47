#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every C and C++ source of the tree is clang-format clean (.clang-format). With --fix, formats them.
# Usage: ./scripts/check-format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format is not installed (scripts/packages.sh test)" >&2; exit 77; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')
else
  mapfile -t files < <(find bench bpf include src tests -name '*.[ch]' -o -name '*.[ch]pp' | sort)
fi
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
  echo "${#files[@]} files clang-format clean"
fi
