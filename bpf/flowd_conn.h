/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Types shared by bpf/flowd_conn.bpf.c (TCP state changes from the kernel) and the kernel plugin
 * (src/plugins/kernel/). */
#ifndef FLOWD_CONN_H
#define FLOWD_CONN_H

#include <linux/types.h>

enum flowd_conn_kind {
  FLOWD_CONN_START = 1, /* reached ESTABLISHED (from SYN_SENT: active open; SYN_RECV: passive) */
  FLOWD_CONN_END = 2,   /* reached CLOSE from ESTABLISHED or a state after it (FIN_WAIT1/2,
                           CLOSE_WAIT, CLOSING, LAST_ACK: a half-closed connection still carries
                           data; TIME_WAIT comes after CLOSE of the full socket), or FIN_WAIT2
                           after its process closed it (nothing more to send or receive) */
};

/* Where a record's comm comes from (process ownership, issue 15): the state changes that open a
 * connection's way run in the opening process (connect(): CLOSE -> SYN_SENT; listen(): CLOSE ->
 * LISTEN), the one to ESTABLISHED in softirq, where the current task is anyone's. */
enum flowd_conn_owner {
  FLOWD_CONN_OWNER_NONE = 0,     /* none recorded (ownership off, an end, or a miss: counted) */
  FLOWD_CONN_OWNER_CONNECT = 1,  /* the process that called connect() on the socket */
  FLOWD_CONN_OWNER_LISTENER = 2, /* the process that called listen() on the local port (or, for
                                    a listener older than the program, its owner as user space
                                    found it in /proc: empty comm when not the configured one) */
};

#define FLOWD_CONN_COMM_LEN 16 /* TASK_COMM_LEN */

/* One record of the ring buffer (80 bytes; 88 with the ring's header). Addresses in network byte
 * order (IPv4: the first 4 bytes; a dual-stack socket's IPv4 peer comes as an IPv4-mapped IPv6
 * address); ports in host order. */
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
  __u8 owner; /* enum flowd_conn_owner: where comm comes from (starts only) */
  __u8 pad[2];
  __u32 netns;  /* the socket's network namespace inode number */
  __u64 cookie; /* the socket's cookie (as sock_diag's idiag_cookie); 0 before Linux 5.12 */
  char comm[FLOWD_CONN_COMM_LEN]; /* the owner's name, NUL-padded; empty without an owner */
};

/* A key of flowd_conn_listeners: a listening port of a network namespace. */
struct flowd_conn_listener_key {
  __u32 netns;
  __u16 port; /* host order */
  __u16 pad;
};

/* Who listens on a port: the comm of the process that called listen(), and the listener (its
 * address, an id only: the entry goes when that socket stops listening; 0 when user space wrote
 * the entry for a listener older than the program, which any listener's close on the port ends). */
struct flowd_conn_listener {
  char comm[FLOWD_CONN_COMM_LEN];
  __u64 sk;
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
  FLOWD_CONN_STAT_OWNER_UNKNOWN = 3, /* starts with ownership on whose opener was not recorded */
  FLOWD_CONN_STAT_MAX = 4,
};

#endif
