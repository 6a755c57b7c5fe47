#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CPU time the netflow (or sflow) collector spends per export packet, for two flowd binaries
# alternated in the same run: each round starts a binary, replays PACKETS export packets of a capture
# at RATE packets/s (bench/netflow_replay.cpp, over loopback), waits until every packet is counted,
# and reads the process's user + system time from /proc. Per-datagram costs (metrics, lookups) show
# here where a loss-free rate search on a shared machine would drown them.
#   bench/collector_cpu.sh OLD_FLOWD NEW_FLOWD [PCAP] [PACKETS] [RATE] [ROUNDS]
# Environment: PLUGIN (netflow or sflow, default netflow), EXPORTERS (replay sockets, default 1),
# REPLAY (the replay driver, default build/bench/flowd_netflow_replay). Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OLD=$1
NEW=$2
PCAP=${3:-$ROOT/../shared/fixtures/netflow/softflowd-ipfix.pcap}
PACKETS=${4:-400000}
RATE=${5:-100000}
ROUNDS=${6:-3}
PLUGIN=${PLUGIN:-netflow}
REPLAY=${REPLAY:-$ROOT/build/bench/flowd_netflow_replay}
# shellcheck source=bench/e2e_lib.sh
source "$ROOT/bench/e2e_lib.sh"
e2e_workdir

counted() {
  local name=flowd_netflow_packets_total
  [[ $PLUGIN == sflow ]] && name=flowd_sflow_datagrams_total
  curl -s "127.0.0.1:$1/metrics" | awk -v n="$name" 'index($1, n) == 1 {s += $2} END {printf "%.0f\n", s}'
}

# CPU seconds (user + system) of process $1 so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }

# run BINARY -> prints "cpu_seconds counted_packets"
run() {
  local port mport pid before after
  port=$(free_port)
  mport=$(free_tcp)
  local extra=""
  [[ $PLUGIN == netflow ]] && extra="tcp_listen ="
  collector_config "$WORK/flowd.cfg" "$WORK" "$PLUGIN" "$port" "$mport" "$extra"
  "$1" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do curl -s "127.0.0.1:$mport/metrics" >/dev/null && break; sleep 0.05; done
  sleep 0.5
  before=$(cpu_of "$pid")
  "$REPLAY" "$PCAP" "$port" "$RATE" "$PACKETS" "${EXPORTERS:-1}" >/dev/null
  for _ in $(seq 50); do (($(counted "$mport") >= PACKETS)) && break; sleep 0.1; done
  after=$(cpu_of "$pid")
  local got
  got=$(counted "$mport")
  kill -TERM "$pid"
  wait "$pid" || true
  echo "$(python3 -c "print(round($after - $before, 3))") $got"
}

echo "capture $PCAP, $PACKETS packets at $RATE/s, ${EXPORTERS:-1} exporter(s), plugin $PLUGIN; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for who in OLD NEW; do
    bin=$OLD
    [[ $who == NEW ]] && bin=$NEW
    read -r cpu got < <(run "$bin")
    echo "round $r $who: cpu ${cpu}s for $got packets: $(python3 -c "print(round($cpu * 1e6 / max($got, 1), 3))") us/packet"
  done
done
