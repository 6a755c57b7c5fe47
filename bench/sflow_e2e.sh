#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Highest loss-free end-to-end rate of the sflow collector against pmacct's sfacctd, same run, same
# replay: flowd_netflow_replay sends the sFlow datagrams of a capture over loopback at a paced rate;
# a rate is loss-free when the collector accounted every flow sample the replay sent (flowd:
# flowd_sflow_samples_total; sfacctd: the packets column of its print plugin's CSV summed, which is
# the number of flow samples: the capture's sampling rate is 1 and sfacctd_renormalize is off).
# Both get the same 4 MiB socket buffer (net.core.rmem_max here): flowd `rcvbuf`, sfacctd
# `sfacctd_pipe_size`. sfacctd's queue to its plugin (plugin_pipe_size/plugin_buffer_size) is set
# to the sizes its documentation recommends for heavy loads, so that it is not the first to drop.
#   bench/sflow_e2e.sh [BUILD_DIR] [PCAP] [SECONDS_PER_TRIAL]
# Environment: FLOWD_WORKERS (flowd's `workers`, default 1), EXPORTERS (replay sockets, default 1),
# START (first rate, datagrams/s, default 10000), ONLY (flowd or sfacctd: search one collector).
# Rates double until the first loss, then bisect 4 steps. Loopback only; every trial is bounded
# (SECONDS_PER_TRIAL of sending, a few seconds to drain and stop).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
PCAP=${2:-$ROOT/tests/fixtures/sflow/pmacctd-sfprobe-rate1.pcap}
SECS=${3:-2}
REPLAY=$BUILD/bench/flowd_netflow_replay
FLOWD=$BUILD/flowd
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/e2e_lib.sh
source "$ROOT/bench/e2e_lib.sh"

metric_sum() { curl -s "127.0.0.1:$1/metrics" | awk -v n="$2" 'index($1, n) == 1 {s += $2} END {printf "%.0f\n", s}'; }

# CPU seconds (user + system) used so far by the processes $@.
cpu_of() {
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  python3 -c "print($t / $(getconf CLK_TCK))"
}

# Waits up to 10 s for process $1 to exit.
wait_exit() {
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
}

# trial COLLECTOR RATE -> prints "sent_samples accounted_samples achieved_datagrams_per_s cpu_s"
# (cpu_s: what the collector's processes used from the first datagram to the end of the drain)
trial() {
  local who=$1 rate=$2 port datagrams out got pid cpu0 cpu1
  port=$(free_port)
  datagrams=$(python3 -c "print(int($rate*$SECS))")
  if [[ $who == flowd ]]; then
    local mport
    mport=$(free_tcp)
    collector_config "$WORK/flowd.cfg" "$WORK" sflow "$port" "$mport"
    "$FLOWD" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do curl -s "127.0.0.1:$mport/metrics" >/dev/null && break; sleep 0.05; done
    cpu0=$(cpu_of "$pid")
    out=$("$REPLAY" "$PCAP" "$port" "$rate" "$datagrams" "${EXPORTERS:-1}")
    sleep 1
    cpu1=$(cpu_of "$pid")
    got=$(metric_sum "$mport" flowd_sflow_samples_total)
    kill -TERM "$pid"
    wait_exit "$pid"
  else
    rm -f "$WORK/sfacctd.csv"
    cat >"$WORK/sfacctd.conf" <<CFG
daemonize: false
logfile: $WORK/sfacctd.log
sfacctd_ip: 127.0.0.1
sfacctd_port: $port
sfacctd_pipe_size: 4194304
sfacctd_renormalize: false
plugins: print
plugin_pipe_size: 104857600
plugin_buffer_size: 1048576
print_output: csv
print_output_file: $WORK/sfacctd.csv
print_refresh_time: 3600
aggregate: proto
CFG
    sfacctd -f "$WORK/sfacctd.conf" >"$WORK/sfacctd.out" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do ss -Huln "sport = :$port" | grep -q . && break; sleep 0.05; done
    sleep 0.3  # the plugin process starts after the socket is bound
    local plugins
    plugins=$(pgrep -P "$pid" || true)
    # shellcheck disable=SC2086
    cpu0=$(cpu_of "$pid" $plugins)
    out=$("$REPLAY" "$PCAP" "$port" "$rate" "$datagrams" "${EXPORTERS:-1}")
    sleep 1
    # shellcheck disable=SC2086
    cpu1=$(cpu_of "$pid" $plugins)
    # SIGINT: the core process stops and its plugin purges its cache to the CSV (pmacct SIGNALS);
    # the plugin is the core's child, waited for too so that the CSV is complete.
    kill -INT "$pid"
    wait_exit "$pid"
    for p in $plugins; do wait_exit "$p"; done
    # Where sfacctd lost samples, when it says so (its queue to the plugin fills: "missing data").
    grep -hE "WARN|ERROR" "$WORK/sfacctd.log" 2>/dev/null | sed -E 's/^[^ ]+ //' | sort | uniq -c | head -3 >&2 || true
    got=$(python3 - "$WORK/sfacctd.csv" <<'PY'
import csv, sys
try:
    rows = list(csv.DictReader(open(sys.argv[1])))
except OSError:
    rows = []
print(sum(int(r["PACKETS"]) for r in rows))
PY
)
  fi
  echo "$(sed -E 's/.* records=([0-9]+) .*/\1/' <<<"$out") ${got:-0} $(sed -E 's/.*achieved_pps=([0-9]+).*/\1/' <<<"$out")" \
    "$(python3 -c "print(round($cpu1 - $cpu0, 2))")"
}

# One trial, logged; true when it was loss-free. The loss-free trials go to $WORK/COLLECTOR.ok.
try() {
  local who=$1 rate=$2 sent got achieved cpu
  read -r sent got achieved cpu < <(trial "$who" "$rate")
  echo "  $who rate=$rate achieved=$achieved sent_samples=$sent accounted=$got cpu_s=$cpu" >&2
  [[ $got -ge $sent && $achieved -ge $((rate * 95 / 100)) ]] || return 1
  echo "$rate $sent $cpu" >>"$WORK/$who.ok"
}

# Highest loss-free rate (datagrams/s) for one collector.
search() {
  local who=$1 good=0 bad=0 rate=${START:-10000}
  while :; do
    if try "$who" "$rate"; then good=$rate; else bad=$rate; break; fi
    rate=$((rate * 2))
    ((rate > 2560000)) && break
  done
  if ((bad > 0)); then
    for _ in 1 2 3 4; do
      rate=$(((good + bad) / 2))
      if try "$who" "$rate"; then good=$rate; else bad=$rate; fi
    done
  fi
  echo "$good"
}

echo "capture: $PCAP, ${SECS}s per trial, ${EXPORTERS:-1} exporter(s), flowd workers ${FLOWD_WORKERS:-1};" \
  "$(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
f=0 s=0
[[ ${ONLY:-flowd} == flowd ]] && f=$(search flowd)
[[ ${ONLY:-sfacctd} == sfacctd ]] && s=$(search sfacctd)
# Samples per CPU-second of the collector at its highest loss-free rate: what it could take with a
# core to itself, whatever the sender's own ceiling on this machine.
per_cpu() {
  [[ -s $WORK/$1.ok ]] || { echo 0; return; }
  sort -n "$WORK/$1.ok" | tail -1 | awk '{ if ($3 > 0) printf "%.0f\n", $2 / $3; else print 0 }'
}
fc=$(per_cpu flowd) sc=$(per_cpu sfacctd)
echo "flowd loss-free: $f datagrams/s; sfacctd loss-free: $s datagrams/s;" \
  "ratio flowd/sfacctd: $(python3 -c "print(round($f/max($s,1),2))")"
echo "flow samples per CPU-second at that rate: flowd $fc, sfacctd $sc;" \
  "ratio: $(python3 -c "print(round($fc/max($sc,1),2))")"
