#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Template files and template exports for bench/template_file_bench.sh (issue 16 §3):
#   template_file_gen.py send PORT EXPORTERS TEMPLATES
#       Teaches flowd the largest template set its bounds keep: EXPORTERS v9 exporters (source
#       addresses 127.0.1.1, 127.0.1.2, ...) each send TEMPLATES templates of 16,369 fields (the most
#       a v9 template set holds in one UDP datagram) with five-digit types and lengths, the fields
#       that make flowd's own JSON the longest for the bytes the template bounds charge.
#   template_file_gen.py small BYTES OUT
#       A file in flowd's own compact form of IPFIX templates of one field each, as many as fit in
#       BYTES (the most entries per byte: what costs the restore the most per byte read).
#   template_file_gen.py wide BYTES OUT
#       The same of v9 templates of 16,369 fields (the most numbers per byte: what costs the parser
#       the most per byte read).
# Loopback only.
import socket
import struct
import sys
import time

V9_FIELDS = 16369  # 20 + 4 + 4 + 4 * 16369 = 65504 <= 65507, the largest UDP payload over IPv4


def v9_template_datagram(template_id, seq):
    fields = struct.pack("!HH", 65535, 65535) * V9_FIELDS
    flowset = struct.pack("!HHHH", 0, 8 + len(fields), template_id, V9_FIELDS) + fields
    header = struct.pack("!HHIIII", 9, 1, 1000, int(time.time()), seq, 0)
    return header + flowset


def send(port, exporters, templates):
    for e in range(exporters):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind(("127.0.1.%d" % (e + 1), 0))
        for t in range(templates):
            s.sendto(v9_template_datagram(256 + t, t), ("127.0.0.1", port))
            time.sleep(0.005)  # one 64 KB datagram at a time: the receive buffer never overflows
        s.close()


def write_file(path, size, entry):
    now_ms = int(time.time() * 1000)
    head = '{"domains":[],"format":"flowd-templates","templates":['
    tail = '],"version":1,"written_ms":%d}\n' % now_ms
    budget = size - len(head) - len(tail)
    n = 0
    with open(path, "w") as out:
        out.write(head)
        while True:
            one = entry(n, now_ms)
            if budget < len(one) + (1 if n else 0):
                break
            if n:
                out.write(",")
                budget -= 1
            out.write(one)
            budget -= len(one)
            n += 1
        out.write(tail)
    return n


def small_entry(n, now_ms):
    # One exporter address per 4,096 templates (max_templates), 65,280 ids per port.
    address = "10.%d.%d.%d" % ((n >> 28) & 255, (n >> 20) & 255, (n >> 12) & 255)
    return (
        '{"domain":0,"exporter":"%s","fields":[[0,8,4]],"id":%d,"ipfix_version":10,'
        '"options":false,"port":%d,"scope_count":0,"seen_ms":%d}'
        % (address, 256 + (n & 4095), 4739, now_ms)
    )


WIDE_FIELDS = ",".join(["[0,65535,65535]"] * V9_FIELDS)


def wide_entry(n, now_ms):
    return (
        '{"domain":0,"exporter":"127.0.%d.%d","fields":[%s],"id":%d,"ipfix_version":9,'
        '"options":false,"port":0,"scope_count":0,"seen_ms":%d}'
        % (1 + n // 21 // 250, 1 + n // 21 % 250, WIDE_FIELDS, 256 + n % 21, now_ms)
    )


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "send":
        send(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] in ("small", "wide"):
        entry = small_entry if sys.argv[1] == "small" else wide_entry
        n = write_file(sys.argv[3], int(sys.argv[2]), entry)
        print("%d templates" % n)
    else:
        sys.exit(__doc__ or "usage: see the comment at the top")


if __name__ == "__main__":
    main()
