#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# flowd's memory under many exporters: starts flowd (netflow plugin, template_timeout 10 s), then has
# EXPORTERS distinct exporters (127.0.0.1, one source port each) send every payload of a capture,
# ROUNDS times; prints VmRSS/VmHWM and the templates gauge after each phase, then again after the
# templates and per-exporter state expired. Loopback only.
#   bench/netflow_memory.sh [BUILD_DIR] [EXPORTERS] [PCAP]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
N=${2:-10000}
PCAP=${3:-$ROOT/../shared/fixtures/netflow/softflowd-ipfix.pcap}
WORK=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/flowd.cfg" <<CFG
[flowd]
plugins = netflow
backends = prometheus
flow_map_api =
work_dir = $WORK/cache
log_level = warn
[plugin.netflow]
listen = 127.0.0.1:$port
tcp_listen =
template_timeout = 10
idle_timeout = 4
[backend.prometheus]
listen = 127.0.0.1:$mport
CFG
"$BUILD/flowd" -c "$WORK/flowd.cfg" >"$WORK/flowd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -s "127.0.0.1:$mport/metrics" >/dev/null && break; sleep 0.05; done
report() {
  local m
  m=$(curl -s "127.0.0.1:$mport/metrics")
  printf '%-34s VmRSS %6d KiB  VmHWM %6d KiB  templates %6s  records %s\n' "$1" \
    "$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)" "$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)" \
    "$(awk '/^flowd_netflow_templates[{ ]/ {s+=$2} END {print s+0}' <<<"$m")" \
    "$(awk '/^flowd_netflow_records_total/ {s+=$2} END {print s+0}' <<<"$m")"
}
report "started"
"$BUILD/bench/flowd_netflow_exporters" "$PCAP" "$port" "$N" 1 20000
sleep 1
report "$N exporters, 1 round"
"$BUILD/bench/flowd_netflow_exporters" "$PCAP" "$port" "$N" 3 20000
sleep 1
report "$N other exporters x 3 rounds"
sleep 14
report "after template_timeout (10 s)"
"$BUILD/bench/flowd_netflow_exporters" "$PCAP" "$port" "$N" 1 20000
sleep 1
report "$N other exporters again"
