#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Soak: flowd under mixed load for a while, its RSS sampled, every counter reconciled (issue 13).

Runs flowd (np_api, netflow, firefly -> udp_firefly, prometheus) on loopback and, for DURATION
seconds, at the same time:
  - pipe lines (start/end pairs of distinct flows) into np_api at --pipe-rate lines/s;
  - a real NetFlow v10 capture replayed by flowd_netflow_replay at --netflow-rate packets/s;
  - malformed datagrams (random bytes, and the fixtures in malformed/) to the netflow and firefly
    listeners at --junk-rate datagrams/s, and malformed pipe lines;
RSS (VmRSS) and descriptor count are sampled every --sample seconds. At the end: lines written =
flowd_np_api_lines_total, datagrams sent = what the netflow listener counted, fireflies received by
the sink + bus drops = events; RSS after warm-up (the first quarter) must stay within --rss-slack
percent of its first post-warm-up sample. Exit 0 when all hold.

Usage: bench/soak.py --flowd build/flowd --replay build/bench/flowd_netflow_replay \\
           --fixtures ../shared/fixtures [--duration 600]
Traffic goes to 127.0.0.1 only.
"""
import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def total(metrics, name, must=""):
    t = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and must in line and not line.startswith("#"):
            t += float(line.rsplit(" ", 1)[1])
    return t


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flowd", required=True)
    ap.add_argument("--replay", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--pipe-rate", type=int, default=5000)
    ap.add_argument("--netflow-rate", type=int, default=2000)
    ap.add_argument("--junk-rate", type=int, default=500)
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--rss-slack", type=float, default=10.0)
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="flowd-soak-")
    pipe = os.path.join(work, "np")
    nf_port, ff_port, prom_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sink_port = sink.getsockname()[1]
    cfg = os.path.join(work, "flowd.cfg")
    with open(cfg, "w") as f:
        f.write(f"""[flowd]
plugins = np_api, netflow, firefly
backends = udp_firefly, prometheus
work_dir = {work}/cache
[plugin.np_api]
path = {pipe}
[plugin.netflow]
listen = 127.0.0.1:{nf_port}
tcp_listen =
[plugin.firefly]
host = 127.0.0.1
port = {ff_port}
[backend.udp_firefly]
port = {sink_port}
[backend.prometheus]
listen = 127.0.0.1:{prom_port}
""")
    log = open(os.path.join(work, "flowd.log"), "w")
    flowd = subprocess.Popen([a.flowd, "-c", cfg], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{prom_port}/metrics"
    for _ in range(100):
        try:
            scrape(url)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("flowd did not start; see " + log.name)

    stop = threading.Event()
    received = [0]

    def sink_loop():
        sink.settimeout(0.5)
        while True:
            try:
                sink.recv(65536)
                received[0] += 1
            except socket.timeout:
                if stop.is_set():
                    return

    written = [0]

    def pipe_loop():
        fd = os.open(pipe, os.O_WRONLY)
        bad = [b"start tcp 1.2.3.4\n", b"\x00\x01\x02 binary\n", b"start tcp 10.0.0.1 1 10.0.0.2 2 nosuch 4\n"]
        i, t0 = 0, time.monotonic()
        while not stop.is_set():
            burst = []
            for _ in range(a.pipe_rate // 10):
                port = 1024 + (i // 2) % 60000
                state = "start" if i % 2 == 0 else "end"
                burst.append(f"{state} tcp 127.0.0.1 {port} 127.0.0.1 5777 cms 4\n".encode())
                i += 1
            burst.append(random.choice(bad))
            data = b"".join(burst)
            os.write(fd, data)
            written[0] += len(burst)
            t0 += 0.1
            time.sleep(max(0.0, t0 - time.monotonic()))
        os.close(fd)

    junk_sent = [0]

    def junk_loop():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mdir = os.path.join(a.fixtures, "malformed")
        fixtures = []
        for n in sorted(os.listdir(mdir)):
            if n.endswith(".bin"):
                with open(os.path.join(mdir, n), "rb") as f:
                    fixtures.append(f.read())
        t0 = time.monotonic()
        while not stop.is_set():
            for _ in range(a.junk_rate // 10):
                if random.random() < 0.5 and fixtures:
                    d = random.choice(fixtures)
                else:
                    d = os.urandom(random.randint(1, 1400))
                s.sendto(d, ("127.0.0.1", nf_port if random.random() < 0.7 else ff_port))
                junk_sent[0] += 1
            t0 += 0.1
            time.sleep(max(0.0, t0 - time.monotonic()))

    threads = [threading.Thread(target=f) for f in (sink_loop, pipe_loop, junk_loop)]
    for t in threads:
        t.start()
    pcap = os.path.join(a.fixtures, "netflow", "pmacctd-nfprobe-v10.pcap")
    replay = subprocess.Popen([a.replay, pcap, str(nf_port), str(a.netflow_rate), str(a.netflow_rate * a.duration)],
                              stdout=subprocess.PIPE, text=True)
    samples = []
    t_start = time.monotonic()
    while time.monotonic() - t_start < a.duration:
        time.sleep(a.sample)
        rss = status(flowd.pid, "VmRSS")
        fds = len(os.listdir(f"/proc/{flowd.pid}/fd"))
        samples.append((round(time.monotonic() - t_start), rss, fds))
        print(f"t={samples[-1][0]:>4}s rss={rss} KiB fds={fds}", flush=True)
    out, _ = replay.communicate(timeout=a.duration + 60)
    stop.set()
    for t in threads:
        t.join()
    time.sleep(1)
    m = scrape(url)
    flowd.send_signal(signal.SIGTERM)
    rc = flowd.wait(timeout=30)

    ok = True
    lines = total(m, "flowd_np_api_lines_total")
    print(f"pipe: {written[0]} lines written, flowd read {lines:.0f}")
    ok &= lines == written[0]
    sent = int(re.search(r"packets=(\d+)", out).group(1))
    nf_counted = total(m, "flowd_netflow_packets_total")
    print(f"netflow: replay sent {sent} export packets, flowd counted {total(m, 'flowd_netflow_packets_total'):.0f} "
          f"packets (incl. junk accepted as a version) and {total(m, 'flowd_netflow_decode_errors_total'):.0f} decode errors; "
          f"{junk_sent[0]} junk datagrams sent")
    ok &= nf_counted >= sent
    events = total(m, "flowd_flow_events_total", 'plugin="np_api"')
    dropped = total(m, "flowd_bus_dropped_events_total", 'backend="udp_firefly"')
    print(f"fireflies: {events:.0f} np_api events, {received[0]} received by the sink, {dropped:.0f} counted as dropped")
    ok &= received[0] + dropped >= events  # a UDP sink may also lose some: never fewer than in
    warm = samples[len(samples) // 4:]
    base = warm[0][1]
    peak = max(s[1] for s in warm)
    growth = 100.0 * (peak - base) / base
    print(f"RSS: start {samples[0][1]} KiB, after warm-up {base} KiB, peak after warm-up {peak} KiB "
          f"(+{growth:.1f} %), end {samples[-1][1]} KiB; fds {samples[0][2]}..{max(s[2] for s in samples)}")
    ok &= growth <= a.rss_slack
    print(f"flowd exit code {rc}; log {log.name}")
    ok &= rc == 0
    print("SOAK OK" if ok else "SOAK FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
