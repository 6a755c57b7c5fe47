# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared by the collectors' end-to-end benchmarks (netflow_e2e.sh, sflow_e2e.sh); sourced, not run.

# e2e_workdir: a scratch directory in WORK and a PIDS list, both cleaned up (the processes killed,
# the directory removed) when the script exits.
e2e_workdir() {
  WORK=$(mktemp -d)
  PIDS=()
  trap e2e_cleanup EXIT
}
e2e_cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}

# A free UDP / TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_tcp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# collector_config FILE WORK PLUGIN PORT METRICS_PORT [EXTRA_PLUGIN_LINES]: flowd with one collector
# plugin on 127.0.0.1:PORT (4 MiB receive buffer, FLOWD_WORKERS workers) and metrics on METRICS_PORT.
collector_config() {
  cat >"$1" <<CFG
[flowd]
plugins = $3
backends = prometheus
flow_map_api =
work_dir = $2/cache
log_level = warn
[plugin.$3]
listen = 127.0.0.1:$4
${6:-}
rcvbuf = 4194304
workers = ${FLOWD_WORKERS:-1}
[backend.prometheus]
listen = 127.0.0.1:$5
CFG
}
