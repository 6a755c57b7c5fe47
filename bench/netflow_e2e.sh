#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Highest loss-free end-to-end rate of the netflow collector against nfcapd (Debian nfdump), same run,
# same replay: flowd_netflow_replay sends a capture's IPFIX/NetFlow exports over loopback at a paced
# rate; a rate is loss-free when the collector stored every record the replay sent (flowd:
# flowd_netflow_records_total; nfcapd: the flows nfdump reads back from the file nfcapd wrote).
# Both get a 4 MiB socket buffer (net.core.rmem_max here; nfcapd -B cannot exceed it).
#   bench/netflow_e2e.sh [BUILD_DIR] [PCAP] [SECONDS_PER_TRIAL]
# Environment: FLOWD_WORKERS (flowd's `workers`, default 1), EXPORTERS (replay sockets, default 1).
# Rates double from 20k packets/s until loss, then bisect 4 steps. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
PCAP=${2:-$ROOT/../shared/fixtures/netflow/softflowd-ipfix.pcap}
SECS=${3:-2}
REPLAY=$BUILD/bench/flowd_netflow_replay
FLOWD=$BUILD/flowd
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=bench/e2e_lib.sh
source "$ROOT/bench/e2e_lib.sh"

# trial COLLECTOR RATE -> prints "sent_records stored_records" (data records for nfcapd)
trial() {
  local who=$1 rate=$2 port packets
  port=$(free_port)
  packets=$(python3 -c "print(int($rate*$SECS))")
  if [[ $who == flowd ]]; then
    local mport
    mport=$(free_tcp)
    collector_config "$WORK/flowd.cfg" "$WORK" netflow "$port" "$mport" "tcp_listen ="
    "$FLOWD" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do curl -s "127.0.0.1:$mport/metrics" >/dev/null && break; sleep 0.05; done
    local out
    out=$("$REPLAY" "$PCAP" "$port" "$rate" "$packets" "${EXPORTERS:-1}")
    sleep 1
    local got
    # Summed over the exporter, observation_domain and version labels.
    got=$(curl -s "127.0.0.1:$mport/metrics" | awk '/^flowd_netflow_records_total[{ ]/ {s+=$2} END {printf "%.0f\n", s}')
    kill -TERM "$pid"
    wait "$pid" || true
    echo "$(sed -E 's/.* records=([0-9]+) .*/\1/' <<<"$out") ${got%.*} $(sed -E 's/.*achieved_pps=([0-9]+).*/\1/' <<<"$out")"
  else
    rm -rf "$WORK/nfc" && mkdir -p "$WORK/nfc"
    nfcapd -b 127.0.0.1 -p "$port" -w "$WORK/nfc" -t 3600 -B 4194304 >"$WORK/nfcapd.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    sleep 0.5
    local out
    out=$("$REPLAY" "$PCAP" "$port" "$rate" "$packets" "${EXPORTERS:-1}")
    sleep 1
    kill -TERM "$pid"
    wait "$pid" || true
    local got
    got=$(nfdump -r "$WORK"/nfc/nfcapd.2* -I 2>/dev/null | awk -F': ' '/^Flows:/ {print $2; exit}')
    echo "$(sed -E 's/.* data_records=([0-9]+) .*/\1/' <<<"$out") ${got:-0} $(sed -E 's/.*achieved_pps=([0-9]+).*/\1/' <<<"$out")"
  fi
}

# Highest loss-free rate (packets/s) for one collector.
search() {
  local who=$1 good=0 bad=0 rate=20000
  while :; do
    read -r sent got achieved < <(trial "$who" "$rate")
    echo "  $who rate=$rate achieved=$achieved sent_records=$sent stored=$got" >&2
    if [[ $got -ge $sent && $achieved -ge $((rate * 95 / 100)) ]]; then good=$rate; else bad=$rate; break; fi
    rate=$((rate * 2))
    ((rate > 2560000)) && break
  done
  if ((bad > 0)); then
    for _ in 1 2 3 4; do
      rate=$(((good + bad) / 2))
      read -r sent got achieved < <(trial "$who" "$rate")
      echo "  $who rate=$rate achieved=$achieved sent_records=$sent stored=$got" >&2
      if [[ $got -ge $sent && $achieved -ge $((rate * 95 / 100)) ]]; then good=$rate; else bad=$rate; fi
    done
  fi
  echo "$good"
}

echo "capture: $PCAP, ${SECS}s per trial, ${EXPORTERS:-1} exporter(s), flowd workers ${FLOWD_WORKERS:-1}; $(nproc) cores, $(uname -r)"
f=$(search flowd)
n=$(search nfcapd)
echo "flowd loss-free: $f packets/s; nfcapd loss-free: $n packets/s; ratio flowd/nfcapd: $(python3 -c "print(round($f/max($n,1),2))")"
