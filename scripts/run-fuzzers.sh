#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (tests/fuzz) in build-fuzz if needed and runs each for a bounded time.
#   scripts/run-fuzzers.sh [SECONDS_PER_TARGET]      (default 60)
#   scripts/run-fuzzers.sh --build-only              (only builds them: CI builds while it waits on I/O)
# Every target runs on a copy of its committed seed corpus in a temporary directory, so the corpus in
# the repository stays small. Crash inputs and the logs of failing targets are kept in
# build-fuzz/fuzz-results/<target>/. Exits 1 if any target found a crash, leak, timeout or OOM.
# Environment: FLOWD_FUZZ_TARGETS="a b" runs a subset; FLOWD_FUZZ_TIMEOUT is the per-input timeout (s);
# FLOWD_FUZZ_JOBS how many targets run at once (default: the number of cores).
set -euo pipefail

BUILD_ONLY=0
if [[ ${1:-} == --build-only ]]; then
  BUILD_ONLY=1
  shift
fi
SECONDS_PER_TARGET=${1:-60}
if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || ((SECONDS_PER_TARGET == 0)); then
  echo "usage: $0 [SECONDS_PER_TARGET]  (a positive integer, default 60)" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build-fuzz
CORPORA=$ROOT/tests/fuzz/corpus
RESULTS=$BUILD/fuzz-results
TARGETS=(${FLOWD_FUZZ_TARGETS:-pipe_line_fuzz legacy_config_fuzz ini_config_fuzz registry_json_fuzz netflow_fuzz firefly_fuzz stun_fuzz proc_net_tcp_fuzz analyze_fuzz sflow_fuzz api_request_fuzz template_file_fuzz flow_journal_fuzz})
PER_INPUT_TIMEOUT=${FLOWD_FUZZ_TIMEOUT:-25}

max_len() {
  case $1 in
    registry_json_fuzz) echo 65536 ;;
    netflow_fuzz) echo 65536 ;;
    analyze_fuzz) echo 16384 ;;
    sflow_fuzz) echo 65536 ;;
    *) echo 8192 ;;
  esac
}

# netflow_fuzz (and sflow_fuzz, whose agents' sequence state persists) keep their decoders (templates,
# held data, exporter state) across inputs by design, so
# nearly every input ends with more mallocs than frees and libFuzzer's per-input leak check ran LSan's
# heap scan each time: 90 % of the time, ~200 inputs/s instead of ~3000. Leaks in the decoder are still
# caught by the unit tests under ASan with detect_leaks=1 (.ci/run), and RSS stays bounded (rss_limit).
extra_flags() {
  case $1 in
    netflow_fuzz | sflow_fuzz) echo -detect_leaks=0 ;;
  esac
}

# --- build ---------------------------------------------------------------------------------------
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  echo "== configuring $BUILD"
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DFLOWD_FUZZ=ON -DFLOWD_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only -DNDEBUG" >"$BUILD.configure.log" 2>&1 || {
    cat "$BUILD.configure.log" >&2
    exit 2
  }
  rm -f "$BUILD.configure.log"
fi
echo "== building ${TARGETS[*]}"
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}" >/dev/null || {
  echo "build failed; rerun: cmake --build $BUILD --target ${TARGETS[*]}" >&2
  exit 2
}
((BUILD_ONLY == 0)) || exit 0

# --- run -----------------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/flowd-fuzz.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Targets run JOBS at a time (default: one per core; FLOWD_FUZZ_JOBS overrides): each is one
# single-threaded process, so two cores finish twelve 60 s targets in six minutes, not twelve.
JOBS=${FLOWD_FUZZ_JOBS:-$(nproc)}
run_one() {
  local t=$1 bin=$BUILD/tests/fuzz/$1 work=$TMP/$1 rc=0 execs eps cov corpus_n result kind artifact
  mkdir -p "$work/corpus" "$RESULTS/$t"
  [[ -d $CORPORA/$t ]] && cp -r "$CORPORA/$t/." "$work/corpus/"
  local log=$work/fuzz.log
  echo "== $t: ${SECONDS_PER_TARGET}s, seeds: $(find "$work/corpus" -type f | wc -l)"
  # shellcheck disable=SC2046  # extra_flags prints zero or more whole flags
  "$bin" "$work/corpus" -max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" $(extra_flags "$t") \
    -rss_limit_mb=2048 -timeout="$PER_INPUT_TIMEOUT" -print_final_stats=1 \
    -artifact_prefix="$RESULTS/$t/" >"$log" 2>&1 || rc=$?

  # A target that crashed early prints no statistics: none of these lookups may end the script.
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1 || true)
  [[ -n $execs ]] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1 || true)
  cov=$(grep -o ' cov: [0-9]*' "$log" | tail -1 | tr -dc '0-9' || true)
  corpus_n=$(find "$work/corpus" -type f | wc -l)
  [[ ${eps:-0} != 0 ]] || eps=-  # libFuzzer reports 0 when it stopped within the first second

  if ((rc == 0)); then
    result=ok
  else
    if grep -q 'libFuzzer: out-of-memory' "$log"; then kind=oom
    elif grep -q 'libFuzzer: timeout' "$log"; then kind=timeout
    elif grep -q 'LeakSanitizer' "$log"; then kind=leak
    elif grep -q 'runtime error:' "$log"; then kind=ubsan
    elif grep -q 'ERROR: AddressSanitizer' "$log"; then kind=asan
    elif grep -q 'uncaught exception\|terminate called' "$log"; then kind=exception
    else kind=crash
    fi
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1 || true)
    cp "$log" "$RESULTS/$t/fuzz.log"
    result="FAIL($kind, exit $rc) input=${artifact:-?} log=$RESULTS/$t/fuzz.log"
    { echo "---- $t: last lines of the log"; grep -v '^#[0-9]' "$log" | tail -40 | sed 's/^/  /'; } >"$work/failure"
  fi
  printf '%-20s execs=%-10s exec/s=%-7s cov=%-6s corpus=%-6s %s\n' \
    "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "$corpus_n" "$result" >"$work/summary"
}

for t in "${TARGETS[@]}"; do
  [[ -x $BUILD/tests/fuzz/$t ]] || { echo "missing $BUILD/tests/fuzz/$t" >&2; exit 2; }
done
running=0
for t in "${TARGETS[@]}"; do
  if ((running >= JOBS)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

failed=0
summary=()
for t in "${TARGETS[@]}"; do
  if [[ -f $TMP/$t/failure ]]; then
    failed=1
    cat "$TMP/$t/failure"
  fi
  summary+=("$(cat "$TMP/$t/summary" 2>/dev/null || echo "$t: no result (the runner itself failed)")")
  [[ -f $TMP/$t/summary ]] || failed=1
done

echo "== summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
