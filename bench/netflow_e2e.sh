#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Highest loss-free end-to-end rate of the netflow collector against nfcapd (Debian nfdump), same run,
# same replay: flowd_netflow_replay sends a capture's IPFIX/NetFlow exports over loopback at a paced
# rate; a rate is loss-free when the collector stored every record the replay sent (flowd:
# flowd_netflow_records_total; nfcapd: the flows nfdump reads back from the file nfcapd wrote).
# Both get a 4 MiB socket buffer (net.core.rmem_max here; nfcapd -B cannot exceed it).
#   bench/netflow_e2e.sh [BUILD_DIR] [PCAP] [SECONDS_PER_TRIAL]
# Environment: FLOWD (the binary, default BUILD_DIR/flowd), FLOWD_WORKERS (flowd's `workers`,
# default 1), EXPORTERS (replay sockets, default 1),
# MODES (default "flowd nfcapd"), each searched in turn in this run:
#   flowd        decode and count (flowd_netflow_records_total)
#   flowd-dump   every record also written to the `dump` file (JSON lines): loss-free when the file
#                holds a line for every record sent
#   flowd-kafka  every record also published by the kafka backend (records = yes, compression
#                KAFKA_COMPRESSION, default lz4) to librdkafka's mock cluster (BUILD_DIR's
#                tests/integration/kafka_mock_cluster, a process of its own, fresh per trial):
#                loss-free when flowd_kafka_messages_total{topic="flowd.records",result="delivered"}
#                counts every record sent
#   flowd-both   the dump file and Kafka at once: loss-free when both have every record
#   nfcapd       nfcapd writing its files
# Rates double from 20k packets/s until loss, then bisect 4 steps. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
PCAP=${2:-$ROOT/../shared/fixtures/netflow/softflowd-ipfix.pcap}
SECS=${3:-2}
REPLAY=$BUILD/bench/flowd_netflow_replay
FLOWD=${FLOWD:-$BUILD/flowd}
MOCK=$BUILD/tests/integration/kafka_mock_cluster
# shellcheck source=bench/e2e_lib.sh
source "$ROOT/bench/e2e_lib.sh"
e2e_workdir

metric() { curl -s "127.0.0.1:$1/metrics" | awk -v n="$2" '$1==n {print $2}'; }
DELIVERED='flowd_kafka_messages_total{result="delivered",topic="flowd.records"}'

# start_mock: a fresh mock Kafka cluster (its stdin a FIFO held open, so it runs until killed);
# sets MOCK_PID and BOOTSTRAP.
start_mock() {
  rm -f "$WORK/mock.in" && mkfifo "$WORK/mock.in"
  "$MOCK" --topic flowd.records:1 --topic flowd.events:1 <"$WORK/mock.in" >"$WORK/mock.out" 2>&1 &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  exec 3>"$WORK/mock.in"
  BOOTSTRAP=
  for _ in $(seq 100); do
    BOOTSTRAP=$(awk '/^bootstrap / {print $2}' "$WORK/mock.out")
    [[ -n $BOOTSTRAP ]] && break
    sleep 0.05
  done
}
stop_mock() {
  exec 3>&-
  kill "$MOCK_PID" 2>/dev/null || true
  wait "$MOCK_PID" 2>/dev/null || true
}

# The smaller of two counts, as an integer.
min() { python3 -c "print(int(min(float('$1' or 0), float('$2' or 0))))"; }

# trial COLLECTOR RATE -> prints "sent_records stored_records" (data records for nfcapd)
trial() {
  local who=$1 rate=$2 port packets
  port=$(free_port)
  packets=$(python3 -c "print(int($rate*$SECS))")
  if [[ $who == flowd* ]]; then
    local mport extra=""
    mport=$(free_tcp)
    rm -f "$WORK/dump.json"
    [[ $who == flowd-dump || $who == flowd-both ]] && extra="dump = $WORK/dump.json"
    collector_config "$WORK/flowd.cfg" "$WORK" netflow "$port" "$mport" "tcp_listen =
$extra"
    if [[ $who == flowd-kafka || $who == flowd-both ]]; then
      start_mock
      sed -i 's/^backends = prometheus$/backends = prometheus, kafka/' "$WORK/flowd.cfg"
      cat >>"$WORK/flowd.cfg" <<CFG
[backend.kafka]
brokers = $BOOTSTRAP
records = yes
compression = ${KAFKA_COMPRESSION:-lz4}
queue_buffering_max_messages = 2000000
flush_timeout = 30s
CFG
    fi
    "$FLOWD" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do curl -s "127.0.0.1:$mport/metrics" >/dev/null && break; sleep 0.05; done
    local out
    out=$("$REPLAY" "$PCAP" "$port" "$rate" "$packets" "${EXPORTERS:-1}")
    local sent
    sent=$(sed -E 's/.* records=([0-9]+) .*/\1/' <<<"$out")
    sleep 1
    local got
    # Summed over the exporter, observation_domain and version labels.
    got=$(curl -s "127.0.0.1:$mport/metrics" | awk '/^flowd_netflow_records_total[{ ]/ {s+=$2} END {printf "%.0f\n", s}')
    if [[ $who == flowd-kafka || $who == flowd-both ]]; then
      # Delivered: wait until the count reaches what was sent or stops growing for 2 s.
      local delivered=0 last=-1 still=0
      for _ in $(seq 120); do
        delivered=$(metric "$mport" "$DELIVERED")
        delivered=${delivered:-0}
        [[ ${delivered%.*} -ge $sent ]] && break
        if [[ $delivered == "$last" ]]; then ((++still >= 4)) && break; else still=0; fi
        last=$delivered
        sleep 0.5
      done
      got=$(min "$got" "$delivered")
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    [[ $who == flowd-kafka || $who == flowd-both ]] && stop_mock
    if [[ $who == flowd-dump || $who == flowd-both ]]; then
      got=$(min "$got" "$(wc -l <"$WORK/dump.json" 2>/dev/null || echo 0)")
    fi
    echo "$sent ${got%.*} $(sed -E 's/.*achieved_pps=([0-9]+).*/\1/' <<<"$out")"
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

echo "capture: $PCAP, ${SECS}s per trial, ${EXPORTERS:-1} exporter(s), flowd workers ${FLOWD_WORKERS:-1}; $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A RESULT
for m in ${MODES:-flowd nfcapd}; do
  RESULT[$m]=$(search "$m")
  echo "$m loss-free: ${RESULT[$m]} packets/s" >&2
done
n=${RESULT[nfcapd]:-}
for m in ${MODES:-flowd nfcapd}; do
  [[ $m == nfcapd ]] && continue
  if [[ -n $n ]]; then
    echo "$m loss-free: ${RESULT[$m]} packets/s; nfcapd loss-free: $n packets/s; ratio $m/nfcapd: $(python3 -c "print(round(${RESULT[$m]}/max($n,1),2))")"
  else
    echo "$m loss-free: ${RESULT[$m]} packets/s"
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
