/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Types shared by bpf/flowd_conn.bpf.c (TCP state changes from the kernel) and the kernel plugin
 * (src/plugins/kernel/). */
#ifndef FLOWD_CONN_H
#define FLOWD_CONN_H

#include <linux/types.h>

enum flowd_conn_kind {
  FLOWD_CONN_START = 1, /* reached ESTABLISHED (from SYN_SENT: active open; SYN_RECV: passive) */
  FLOWD_CONN_END = 2,   /* left ESTABLISHED (FIN_WAIT1, CLOSE_WAIT or CLOSE: the first closing
                           state, which is what the scanners call an end) */
};

/* One record of the ring buffer. Addresses in network byte order (IPv4: the first 4 bytes; a
 * dual-stack socket's IPv4 peer comes as an IPv4-mapped IPv6 address); ports in host order. */
struct flowd_conn_event {
  __u64 ts_boot_ns; /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME of the state change */
  __u8 local_addr[16];
  __u8 remote_addr[16];
  __u16 local_port;
  __u16 remote_port;
  __u16 family; /* AF_INET or AF_INET6 */
  __u8 kind;    /* enum flowd_conn_kind */
  __u8 oldstate;
  __u8 newstate;
  __u8 pad[3];
  __u32 netns;  /* the socket's network namespace inode number */
  __u64 cookie; /* the socket's cookie (as sock_diag's idiag_cookie); 0 before Linux 5.12 */
};

/* A key of flowd_unmarked_networks (BPF_MAP_TYPE_LPM_TRIE): an IPv6 network the plugin does not
 * report (internal_networks, ignore_private), prefix length in bits, address in network order. */
struct flowd_conn_network {
  __u32 prefixlen;
  __u8 addr[16];
};

enum flowd_conn_stat {
  FLOWD_CONN_STAT_EVENTS = 0, /* records written to the ring buffer */
  FLOWD_CONN_STAT_LOST = 1,   /* records the full ring buffer refused (bpf_ringbuf_reserve) */
  FLOWD_CONN_STAT_MARKED = 2, /* flows written to the marker's map at their state change */
  FLOWD_CONN_STAT_MAX = 3,
};

#endif
