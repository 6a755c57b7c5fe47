#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TCP throughput over a veth pair with and without the marker, in the same run, and the BPF map's
# memory for max_flows = 100000 and 1000000. Run as root: bench/marker_throughput.sh [FLOWD] [ROUNDS] [SECONDS]
set -euo pipefail
flowd=${1:-build/flowd}
rounds=${2:-3}
secs=${3:-5}
ns=flowdtp$$
dir=$(mktemp -d)
cleanup() { kill "$(cat "$dir/pid" 2>/dev/null)" 2>/dev/null || true
            kill "$(cat "$dir/iperf.pid" 2>/dev/null)" 2>/dev/null || true  # iperf3 -D outlives its netns
            ip netns del ${ns}a 2>/dev/null || true;
            ip netns del ${ns}b 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ip netns add ${ns}a; ip netns add ${ns}b
ip link add vtpa type veth peer name vtpb
ip link set vtpa netns ${ns}a; ip link set vtpb netns ${ns}b
ip -n ${ns}a addr add fd00:f10f::1/64 dev vtpa nodad; ip -n ${ns}b addr add fd00:f10f::2/64 dev vtpb nodad
for n in a b; do ip -n ${ns}$n link set lo up; done
ip -n ${ns}a link set vtpa up; ip -n ${ns}b link set vtpb up
ip netns exec ${ns}b iperf3 -s -D -p 5201 --pidfile "$dir/iperf.pid"
sleep 0.5

start_flowd() {  # $1 = max_flows
  cat > "$dir/flowd.cfg" <<CFG
[flowd]
plugins = np_api
backends = ebpf
work_dir = $dir/cache
log_level = warn
[plugin.np_api]
path = $dir/np
[backend.ebpf]
interfaces = vtpa
max_flows = $1
CFG
  ip netns exec ${ns}a "$flowd" -c "$dir/flowd.cfg" 2>"$dir/flowd.log" &
  echo $! > "$dir/pid"
  for _ in $(seq 100); do [ -p "$dir/np" ] && break; sleep 0.05; done
}
stop_flowd() { kill "$(cat "$dir/pid")"; wait "$(cat "$dir/pid")" 2>/dev/null || true; rm -f "$dir/pid"; }

run_iperf() {  # prints Gbit/s of the sender
  ip netns exec ${ns}a iperf3 -6 -c fd00:f10f::2 -p 5201 --cport 40500 -t "$secs" -J |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_sent"]["bits_per_second"]/1e9))'
}

echo "round plain_gbps marked_gbps ratio"
for r in $(seq "$rounds"); do
  plain=$(run_iperf)
  start_flowd 100000
  echo "start tcp fd00:f10f::1 40500 fd00:f10f::2 5201 2 9" > "$dir/np"
  sleep 0.2
  marked=$(run_iperf)
  marked_pkts=$(ip netns exec ${ns}a bpftool map dump name flowd_stats -j 2>/dev/null | python3 -c '
import json,sys
d=json.load(sys.stdin)
print(sum(v["value"] for e in d if e["formatted"]["key"]==1 for v in e["formatted"]["values"]))' 2>/dev/null || echo "?")
  stop_flowd
  echo "$r $plain $marked $(python3 -c "print('%.3f' % ($marked/$plain))") (packets marked: $marked_pkts)"
done

for flows in 100000 1000000; do
  start_flowd $flows
  mem=$(bpftool map show name flowd_flow_labe -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_memlock"])')
  echo "max_flows=$flows flow map memlock: $mem bytes ($(python3 -c "print('%.1f' % ($mem/1048576))") MiB, $(python3 -c "print('%.0f' % ($mem/$flows))") B/flow)"
  stop_flowd
done
