#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configures the project afresh in SCRATCH with -DFLOWD_LAYER_PROBE, which puts
# `#include "common/net/prefix.hpp"` (a layer above) into the real flowd_types library, builds that
# library and expects the build to fail with the compiler naming the header as not found.
# Usage: wrong_way_build.sh SOURCE_DIR SCRATCH GENERATOR CC CXX
set -euo pipefail
src=$1 scratch=$2 generator=$3 cc=$4 cxx=$5
rm -rf "$scratch"
trap 'rm -rf "$scratch"' EXIT
cmake -S "$src" -B "$scratch" -G "$generator" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DFLOWD_BUILD_TESTS=OFF -DFLOWD_BUILD_BENCH=OFF "-DFLOWD_LAYER_PROBE=flowd_types;common/net/prefix.hpp" \
  >"$scratch.configure.log" 2>&1 || { cat "$scratch.configure.log"; rm -f "$scratch.configure.log"; exit 1; }
rm -f "$scratch.configure.log"
if out=$(cmake --build "$scratch" --target flowd_types 2>&1); then
  echo "$out"
  echo "FAIL: flowd_types built although it includes common/net/prefix.hpp"
  exit 1
fi
if ! grep -Eq "layer_probe\.cpp:[0-9]+:[0-9]+: fatal error: '?common/net/prefix\.hpp'?:? (No such file or directory|file not found)" <<<"$out"; then
  echo "$out"
  echo "FAIL: the build failed, but not on the wrong-way include"
  exit 1
fi
grep -E "fatal error" <<<"$out"
echo "OK: the wrong-way include failed the build"
