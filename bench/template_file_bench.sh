#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a start costs with the largest template file (issue 16 §3): flowd (netflow plugin, default
# template bounds) learns the largest template set its bounds keep from 17 v9 exporters on loopback
# and writes it on stop; then each start with (1) that file, (2) a file of one-field IPFIX templates
# and (3) one of 16,369-field v9 templates, both a few bytes under the size flowd reads at most
# (taken from flowd's own refusal of a larger file), is timed until the restore line, and its peak
# RSS (VmHWM) read from /proc/PID/status.
#   bench/template_file_bench.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
GEN="python3 $ROOT/bench/template_file_gen.py"
# shellcheck source=bench/e2e_lib.sh
. "$ROOT/bench/e2e_lib.sh"
WORK=$(mktemp -d)
port=$(free_port)
mport=$(free_tcp)
FILE=$WORK/cache/templates.plugin.netflow.json
mkdir -p "$WORK/cache"
collector_config "$WORK/flowd.cfg" "$WORK" netflow "$port" "$mport" "tcp_listen =
template_save_interval = 0"
# The restore's lines: "took back" (info), "read in N ms, taken back in N ms" (debug).
sed -i 's/^log_level = warn$/log_level = debug/' "$WORK/flowd.cfg"
pid=
tpid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$WORK"' EXIT
start() {
  : >"$WORK/flowd.log"
  "$BUILD/flowd" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
  pid=$!
}
# The learning run under /usr/bin/time: its peak RSS includes the save at stop.
start_timed() {
  : >"$WORK/flowd.log"
  /usr/bin/time -f %M -o "$WORK/maxrss" "$BUILD/flowd" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
  tpid=$!
  for _ in $(seq 100); do
    pid=$(pgrep -P "$tpid" -x flowd) && break
    sleep 0.05
  done
}
stop() {
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  pid=
  if [ -n "$tpid" ]; then wait "$tpid" || true; tpid=; fi
}
gauge() {
  curl -s "127.0.0.1:$mport/metrics" | awk -v n="$1" '$1 ~ "^"n"({|$)" {s+=$2} END {print s+0}'
}

# (1) flowd writes the largest file of its own.
start_timed
for _ in $(seq 200); do curl -s "127.0.0.1:$mport/metrics" >/dev/null && break; sleep 0.05; done
$GEN send "$port" 17 21
sleep 1
echo "learnt: $(gauge flowd_netflow_templates) templates, $(gauge flowd_netflow_template_bytes) bytes held (max_template_bytes 67108864), VmHWM $(awk '/^VmHWM/ {print $2}' "/proc/$pid/status") KiB"
stop
echo "saved on stop: $(stat -c %s "$FILE") bytes; peak RSS of the run, the save included: $(cat "$WORK/maxrss") KiB"
cp "$FILE" "$WORK/own.json"

measure() {  # NAME FILE
  cp "$2" "$FILE"
  local size t0 t1 line
  size=$(stat -c %s "$FILE")
  t0=$(date +%s%N)
  start
  until line=$(grep -m1 -E 'took back|starting without saved templates' "$WORK/flowd.log"); do
    sleep 0.005
  done
  t1=$(date +%s%N)
  local hwm ticks read_ms back_ms
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  read_ms=$(grep -o 'read in [0-9]* ms' "$WORK/flowd.log" | grep -o '[0-9]*' || echo -)
  back_ms=$(grep -o 'taken back in [0-9]* ms' "$WORK/flowd.log" | grep -o '[0-9]*' || echo -)
  printf '%-34s %11d bytes  start %5d ms (read %s ms, taken back %s ms, CPU %d ms)  VmHWM %7d KiB\n' \
    "$1" "$size" $(((t1 - t0) / 1000000)) "$read_ms" "$back_ms" $((ticks * 1000 / $(getconf CLK_TCK))) "$hwm"
  echo "    ${line#*] }"
  stop
}

# The size flowd reads at most, from its refusal of a larger (sparse) file.
rm -f "$FILE"
truncate -s 1G "$FILE"
start
until cap=$(grep -o 'more than the [0-9]* read at most' "$WORK/flowd.log" | grep -o '[0-9]*'); do sleep 0.01; done
stop
echo "read at most: $cap bytes"

measure "flowd's own file" "$WORK/own.json"
$GEN small $((cap - 16)) "$WORK/small.json" >/dev/null
measure "one-field templates, cap - 16" "$WORK/small.json"
rm -f "$WORK/small.json"
$GEN wide $((cap - 16)) "$WORK/wide.json" >/dev/null
measure "16,369-field v9 templates, cap - 16" "$WORK/wide.json"
