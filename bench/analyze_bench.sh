#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `flowd analyze` on a large synthetic dump: records per second and peak RSS (GNU time), in a temp dir.
#   bench/analyze_bench.sh [FLOWD] [LINES] [SECONDS]   (defaults: build/flowd 2000000 7200)
# LINES records over SECONDS of stream time (bench/analyze_gen_dump.py). Runs, each once:
#   table sorted by start (the default), --json --sort none, the gzip dump, and a dense stream
#   (the same lines within 60 s, so every connection is open at once) with --max-open 100000.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLOWD=${1:-$ROOT/build/flowd}
LINES=${2:-2000000}
SECONDS_SPAN=${3:-7200}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/flowd-analyze-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

echo "== generating $LINES lines over ${SECONDS_SPAN}s"
python3 "$ROOT/bench/analyze_gen_dump.py" "$LINES" "$SECONDS_SPAN" >"$TMP/dump.json"
python3 "$ROOT/bench/analyze_gen_dump.py" "$LINES" 60 >"$TMP/dense.json"
gzip -1 -c "$TMP/dump.json" >"$TMP/dump.json.gz"
n=$(wc -l <"$TMP/dump.json")
echo "   $n lines, $(du -m "$TMP/dump.json" | cut -f1) MiB plain, $(du -m "$TMP/dump.json.gz" | cut -f1) MiB gzip"

run() {
  local name=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o "$TMP/time" "$FLOWD" analyze "$@" >/dev/null 2>"$TMP/err"
  read -r secs user sys kib <"$TMP/time"
  # Records per wall second, and per CPU second (the machine is shared: wall time includes waiting).
  printf '%-34s %6.2f s wall %6.2f s CPU  %8.0f records/s  %8.0f records/CPU-s  peak RSS %5.0f MiB\n' "$name" \
    "$secs" "$(echo "$user + $sys" | bc -l)" "$(echo "$n / $secs" | bc -l)" \
    "$(echo "$n / ($user + $sys)" | bc -l)" "$(echo "$kib / 1024" | bc -l)"
  grep '^flowd analyze:' "$TMP/err" | sed 's/^/    /'
}
run "table, --sort start" "$TMP/dump.json"
run "--json --sort none" --json --sort none "$TMP/dump.json"
run "gzip, table, --sort start" "$TMP/dump.json.gz"
run "dense, --max-open 100000, none" --sort none --max-open 100000 "$TMP/dense.json"
run "dense, defaults" "$TMP/dense.json"
