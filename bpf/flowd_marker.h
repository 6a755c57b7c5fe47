/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Types shared by bpf/flowd_marker.bpf.c and the ebpf backend (src/backends/ebpf/). */
#ifndef FLOWD_MARKER_H
#define FLOWD_MARKER_H

#include <linux/types.h>

/* What identifies an outgoing flow: destination address, ports and protocol. No source address, so
 * NAT'd and multi-homed hosts still match. Ports in network byte order, as on the wire. Every byte,
 * padding included, must be zeroed before use as a map key. */
struct flowd_flow_key {
  __u8 daddr[16];
  __u16 sport;
  __u16 dport;
  __u8 proto;
  __u8 pad[3];
};

enum flowd_marker_stat {
  FLOWD_STAT_SEEN = 0,       /* packets the program ran on */
  FLOWD_STAT_MARKED = 1,     /* packets whose flow label was written */
  FLOWD_STAT_PARSE_FAIL = 2, /* IPv6 packets whose headers could not be walked to the ports */
  FLOWD_STAT_MAX = 3,
};

#endif
