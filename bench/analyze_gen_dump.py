#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes a synthetic flowd JSON dump (the shape of `flowd decode` lines for softflowd IPFIX) for
# bench/analyze_bench.sh: LINES records of uni-directional flows over SECONDS of stream time; each
# connection's reverse record arrives 300 connections later, 5 % have no reverse, 10 % are IPv6.
#   bench/analyze_gen_dump.py LINES SECONDS > dump.json
import sys
from datetime import datetime, timedelta, timezone

lines, seconds = int(sys.argv[1]), float(sys.argv[2])
conns = int(lines / 1.95)
step = seconds / max(conns, 1)
base = datetime(2026, 11, 22, 14, 0, 0, tzinfo=timezone.utc)
services = [22, 80, 443, 5201, 1094, 2811, 8443]
out = sys.stdout
written = 0
pending = []  # (due index, line)


def ts(t):
    return (base + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"


def record(v6, src, dst, sport, dport, octets, packets, start, end, arrival):
    s, d = ("sourceIPv6Address", "destinationIPv6Address") if v6 else ("sourceIPv4Address", "destinationIPv4Address")
    fields = (f'"{d}":"{dst}","destinationTransportPort":{dport},"egressInterface":0,"flowDirection":0,'
              f'"flowEndMilliseconds":"{end}","flowEndReason":3,"flowEndSysUpTime":2867,'
              f'"flowStartMilliseconds":"{start}","flowStartSysUpTime":2867,"ingressInterface":0,'
              f'"ipClassOfService":0,"ipVersion":{6 if v6 else 4},"octetDeltaCount":{octets},'
              f'"packetDeltaCount":{packets},"protocolIdentifier":6,"{s}":"{src}",'
              f'"sourceTransportPort":{sport},"tcpControlBits":27')
    return ('{"domain":0,"exporter":"192.0.2.254:52332","fields":{' + fields +
            '},"options":false,"template":1024,"time":"' + arrival + '","version":10}\n')


for i in range(conns):
    if written >= lines:
        break
    t = i * step
    v6 = i % 10 == 0
    if v6:
        client, server = f"2001:db8:{(i >> 16) & 0xffff:x}::{i & 0xffff:x}", f"2001:db8:ffff::{i % 200 + 1:x}"
    else:
        client, server = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", f"192.0.2.{i % 200 + 1}"
    cport, sport = 1024 + (i * 7) % 60000, services[i % len(services)]
    start, end, arrival = ts(max(t - 1.5, 0)), ts(max(t - 0.1, 0)), ts(t)
    out.write(record(v6, client, server, cport, sport, 1000 + (i * 7919) % 10_000_000, 10 + i % 5000, start, end, arrival))
    written += 1
    if i % 20 != 0:  # 5 % never answered
        pending.append((i + 300, (v6, server, client, sport, cport, 40 + (i * 31) % 100_000, 5 + i % 300, start, end)))
    while pending and pending[0][0] <= i and written < lines:
        _, r = pending.pop(0)
        out.write(record(*r, ts(t)))
        written += 1
