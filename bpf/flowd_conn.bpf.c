// SPDX-License-Identifier: GPL-2.0-only
/* flowd's TCP connection events: on the kernel's sock:inet_sock_set_state tracepoint (BTF-typed,
 * tp_btf), a TCP socket of flowd's network namespace reaching ESTABLISHED, or reaching CLOSE after
 * it, is written to a ring buffer for the kernel plugin. A record the full ring cannot take is
 * counted, so that user space repairs the loss with a sock_diag dump instead of losing it silently.
 * CO-RE: the kernel structures below are the few fields read, relocated by libbpf against the
 * running kernel's BTF, so one object runs on every kernel with BTF (5.8 or later for
 * bpf_ktime_get_boot_ns and the ring buffer). */
// The kernel's types (linux/bpf.h) must come before libbpf's helpers: not sorted.
// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
// clang-format on

#include "flowd_conn.h"
#include "flowd_label.h"
#include "flowd_marker.h"

#define FLOWD_AF_INET 2
#define FLOWD_AF_INET6 10
#define FLOWD_IPPROTO_TCP 6
#define FLOWD_TCP_ESTABLISHED 1
#define FLOWD_TCP_SYN_SENT 2
#define FLOWD_TCP_SYN_RECV 3
#define FLOWD_TCP_FIN_WAIT1 4
#define FLOWD_TCP_FIN_WAIT2 5
#define FLOWD_TCP_CLOSE 7
#define FLOWD_TCP_CLOSE_WAIT 8
#define FLOWD_TCP_LAST_ACK 9
#define FLOWD_TCP_LISTEN 10
#define FLOWD_TCP_CLOSING 11

/* The fields read, as the kernel names them (include/net/sock.h, include/net/net_namespace.h). */
struct ns_common {
  unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
  struct ns_common ns;
} __attribute__((preserve_access_index));

struct in6_addr {
  __u8 bytes[16]; /* the kernel's is a union (in6_u); only the whole field is read */
};

struct sock_common {
  __be32 skc_daddr;
  __be32 skc_rcv_saddr;
  __be16 skc_dport;
  __u16 skc_num;
  unsigned short skc_family;
  struct {
    struct net* net;
  } skc_net;
  struct in6_addr skc_v6_daddr;
  struct in6_addr skc_v6_rcv_saddr;
  unsigned long
      skc_flags; /* where newer kernels keep sk_flags (#define sk_flags __sk_common.skc_flags) */
} __attribute__((preserve_access_index));

struct sock {
  struct sock_common __sk_common;
  __u16 sk_protocol; /* a bit field before Linux 5.6: read with BPF_CORE_READ_BITFIELD_PROBED */
  unsigned long sk_flags; /* before it moved into sock_common (skc_flags) */
} __attribute__((preserve_access_index));

#define FLOWD_SOCK_DEAD 0 /* enum sock_flags: the first, since Linux 2.6 */

/* Whether the socket's process closed it (sock_orphan() set SOCK_DEAD), wherever the running
 * kernel keeps sk_flags (CO-RE: the branch the kernel lacks is never run). */
static __always_inline int sock_dead(struct sock* sk) {
  unsigned long flags;

  if (bpf_core_field_exists(sk->__sk_common.skc_flags))
    flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
  else
    flags = BPF_CORE_READ(sk, sk_flags);
  return (flags >> FLOWD_SOCK_DEAD) & 1;
}

/* The local port as the socket's own field (network order): unlike skc_num, which inet_put_port()
 * clears when the socket moves to CLOSE (tcp_set_state() unhashes it before the tracepoint fires),
 * it stays set until after the state change. */
struct inet_sock {
  struct sock sk;
  __be16 inet_sport;
} __attribute__((preserve_access_index));

/* Set through the skeleton's rodata before load: flowd's own network namespace (inode of
 * /proc/self/ns/net); 0 takes every namespace. */
const volatile __u32 cfg_netns = 0;
/* Whether bpf_get_socket_cookie may be called (tracing programs: Linux 5.12); user space loads the
 * program again without it where the kernel refuses it. */
const volatile __u32 cfg_cookie = 1;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20); /* user space sets ring_buffer_size before load */
} flowd_conn_events SEC(".maps");

/* Marked from the first packet (issue 15): when cfg_mark is set, an IPv6 connection that reaches
 * ESTABLISHED and whose tag is decided by its local port (flowd_port_labels) or the fixed tag
 * (cfg_default_label) is written into the marker's flow map here, before user space reads the
 * event, so its next packet (the handshake's last ACK, the server's first data) carries the label.
 * User space then confirms it (the marker's start keeps the entropy bits) or removes it (a
 * connection it does not report). Its end (CLOSE: every byte of a half-closed connection is
 * marked) removes it here too, so that a lost record leaves
 * nothing in the map; both only what this program wrote (flowd_own_marks). */
const volatile __u32 cfg_mark = 0;
const volatile __u32 cfg_has_default = 0;
const volatile __u32 cfg_default_label = 0; /* semantic bits (flowd_label.h), entropy 0 */

/* The marker's map (bpf/flowd_marker.bpf.c): user space hands this program the marker's own map
 * (bpf_map__reuse_fd) before load; without a marker it stays this unused one-entry map. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1);
  __type(key, struct flowd_flow_key);
  __type(value, __u32);
} flowd_flow_labels SEC(".maps");

/* The entries this program wrote into the marker's map, with the value it wrote (issue 15). Only
 * these are ever taken out again, here at the connection's end or by the plugin (a connection it
 * does not report), and only while the marker's map still holds that very value: an entry another
 * plugin's start put there (np_api, the API) is never removed by the kernel plugin. User space
 * sizes it as the marker's map and hands it on to a reload's successor. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 1); /* user space sets the marker's max_flows before load */
  __type(key, struct flowd_flow_key);
  __type(value, __u32);
} flowd_own_marks SEC(".maps");

/* Local port -> the label's semantic bits (the plugin's rules), filled by user space at start. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1); /* user space sets the number of rules before load */
  __type(key, __u16);
  __type(value, __u32);
} flowd_port_labels SEC(".maps");

/* The IPv6 networks whose connections the plugin does not report (internal_networks, and the
 * private ranges while ignore_private is on), filled by user space at start: a connection to one
 * of them is not marked here, so not even its handshake's last ACK leaves labelled. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 1); /* user space sets the number of networks before load */
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flowd_conn_network);
  __type(value, __u8);
} flowd_unmarked_networks SEC(".maps");

/* Process ownership (issue 15): when cfg_owners is set, the comm of the process that calls
 * connect() (CLOSE -> SYN_SENT, in that process) by socket, until the socket leaves SYN_SENT, and
 * of the one that calls listen() (CLOSE -> LISTEN, likewise) by local port, until that listener
 * closes. The state change to ESTABLISHED runs in softirq, where the current task is anyone's: it
 * takes its record's comm from these. User space decides what the comm means (the kernel marks
 * nothing from it). */
const volatile __u32 cfg_owners = 0;

/* Socket (its address, an id only) -> comm of the process that connect()ed it. LRU: a socket whose
 * leaving SYN_SENT was never seen cannot hold its entry for ever; an entry evicted before its
 * connection is established is a miss (FLOWD_CONN_STAT_OWNER_UNKNOWN). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384); /* connect()s in flight at once */
  __type(key, __u64);
  __type(value, char[FLOWD_CONN_COMM_LEN]);
} flowd_conn_connecting SEC(".maps");

/* Listening port -> who listens (user space adds the listeners older than the program). One port
 * of one namespace is one entry, so 65536 hold every port of flowd's namespace. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flowd_conn_listener_key);
  __type(value, struct flowd_conn_listener);
} flowd_conn_listeners SEC(".maps");

/* Sockets whose end was sent when, closed by their process, they reached FIN-WAIT-2 (see
 * connection_end()), so that their CLOSE is not a second end. LRU: an entry evicted first gives a
 * second end record, which user space ignores (the connection is forgotten at the first). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, __u8);
} flowd_conn_ended SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FLOWD_CONN_STAT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} flowd_conn_stats SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64* v = bpf_map_lookup_elem(&flowd_conn_stats, &which);

  if (v) *v += 1;
}

/* The marker's key of the connection's outgoing packets (flowd_marker.h: destination address,
 * ports in network order, protocol), or 0 when the marker cannot mark it (IPv4, IPv4-mapped). */
static __always_inline int flow_key_of(struct sock* sk, __u16 family, __u16 local_port,
                                       struct flowd_flow_key* key) {
  if (family != FLOWD_AF_INET6) return 0;
  __builtin_memset(key, 0, sizeof(*key));
  BPF_CORE_READ_INTO(&key->daddr, sk, __sk_common.skc_v6_daddr);
  __u32 w0, w1, w2;

  __builtin_memcpy(&w0, key->daddr, 4);
  __builtin_memcpy(&w1, key->daddr + 4, 4);
  __builtin_memcpy(&w2, key->daddr + 8, 4);
  if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xFFFF)) return 0;
  key->sport = bpf_htons(local_port);
  key->dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
  key->proto = FLOWD_IPPROTO_TCP;
  return 1;
}

/* The label's semantic bits the plugin's rules give a connection on `local_port`; 0: none. */
static __always_inline __u32 rule_label(__u16 local_port, int* found) {
  __u32* v = bpf_map_lookup_elem(&flowd_port_labels, &local_port);

  *found = 1;
  if (v) return *v;
  if (cfg_has_default) return cfg_default_label;
  *found = 0;
  return 0;
}

/* The connection ends: its entry goes if this program wrote it and nobody rewrote it since. */
static __always_inline void unmark_own(struct flowd_flow_key* key) {
  __u32* own = bpf_map_lookup_elem(&flowd_own_marks, key);

  if (!own) return;
  __u32* now = bpf_map_lookup_elem(&flowd_flow_labels, key);

  if (now && *now == *own) bpf_map_delete_elem(&flowd_flow_labels, key);
  bpf_map_delete_elem(&flowd_own_marks, key);
}

static __always_inline void mark(struct sock* sk, __u16 family, __u16 local_port, __u8 kind) {
  struct flowd_flow_key key;

  if (!flow_key_of(sk, family, local_port, &key)) return;
  if (kind == FLOWD_CONN_END) {
    unmark_own(&key);
    return;
  }
  int found;
  __u32 label = rule_label(local_port, &found);

  if (!found) return;
  struct flowd_conn_network peer = {.prefixlen = 128};

  __builtin_memcpy(peer.addr, key.daddr, sizeof(peer.addr));
  if (bpf_map_lookup_elem(&flowd_unmarked_networks, &peer)) return;
  label = (label & FLOWD_LABEL_SEMANTIC_MASK) | (bpf_get_prandom_u32() & FLOWD_LABEL_ENTROPY_MASK);
  /* BPF_NOEXIST: an entry already there is another report's (np_api, the API), left as it is. */
  if (bpf_map_update_elem(&flowd_flow_labels, &key, &label, BPF_NOEXIST) == 0) {
    bpf_map_update_elem(&flowd_own_marks, &key, &label, BPF_ANY);
    count(FLOWD_CONN_STAT_MARKED);
  }
}

/* The state changes around a connection's opening that say who owns it (cfg_owners): recorded at
 * connect() and listen(), forgotten when the socket leaves SYN_SENT or stops listening. */
static __always_inline void track_owner(struct sock* sk, int oldstate, int newstate, __u32 netns,
                                        __u16 local_port) {
  __u64 id = (__u64)(unsigned long)sk;

  if (newstate == FLOWD_TCP_SYN_SENT) {
    char comm[FLOWD_CONN_COMM_LEN] = {};

    bpf_get_current_comm(comm, sizeof(comm));
    bpf_map_update_elem(&flowd_conn_connecting, &id, comm, BPF_ANY);
    return;
  }
  if (oldstate == FLOWD_TCP_SYN_SENT) { /* to CLOSE (refused, timed out); ESTABLISHED: start() */
    bpf_map_delete_elem(&flowd_conn_connecting, &id);
    return;
  }
  struct flowd_conn_listener_key key = {.netns = netns, .port = local_port};

  if (newstate == FLOWD_TCP_LISTEN) {
    struct flowd_conn_listener l = {.sk = id};

    bpf_get_current_comm(l.comm, sizeof(l.comm));
    bpf_map_update_elem(&flowd_conn_listeners, &key, &l, BPF_ANY);
    return;
  }
  if (oldstate == FLOWD_TCP_LISTEN && newstate == FLOWD_TCP_CLOSE) {
    /* Not LISTEN -> SYN_RECV: that is a new connection's socket, cloned from the listener (its
     * state included) in inet_csk_clone_lock(). Another listener on the port (SO_REUSEPORT, another
     * address) keeps the entry it wrote. */
    struct flowd_conn_listener* l = bpf_map_lookup_elem(&flowd_conn_listeners, &key);

    if (l && (l->sk == id || l->sk == 0)) bpf_map_delete_elem(&flowd_conn_listeners, &key);
  }
}

/* The owner of a connection reaching ESTABLISHED into its record: the connect()ing process (from
 * SYN_SENT), or the process listening on its local port (from SYN_RECV). */
static __always_inline void owner_of(struct sock* sk, int oldstate, struct flowd_conn_event* e) {
  if (oldstate == FLOWD_TCP_SYN_SENT) {
    __u64 id = (__u64)(unsigned long)sk;
    char* comm = bpf_map_lookup_elem(&flowd_conn_connecting, &id);

    if (comm) {
      __builtin_memcpy(e->comm, comm, sizeof(e->comm));
      e->owner = FLOWD_CONN_OWNER_CONNECT;
      bpf_map_delete_elem(&flowd_conn_connecting, &id);
      return;
    }
  } else {
    struct flowd_conn_listener_key key = {.netns = e->netns, .port = e->local_port};
    struct flowd_conn_listener* l = bpf_map_lookup_elem(&flowd_conn_listeners, &key);

    if (l) {
      __builtin_memcpy(e->comm, l->comm, sizeof(e->comm));
      e->owner = FLOWD_CONN_OWNER_LISTENER;
      return;
    }
  }
  count(FLOWD_CONN_STAT_OWNER_UNKNOWN);
}

/* The states a connection passes through from ESTABLISHED to CLOSE, in all of which it can still
 * carry data: FIN-WAIT-1 sends what is queued and, like FIN-WAIT-2, receives; CLOSE-WAIT sends
 * (the server's answer after the client's shutdown(SHUT_WR)); CLOSING and LAST-ACK retransmit.
 * Every way out of them goes through CLOSE on the full socket (tcp_done(): a RST, the last ACK
 * of LAST-ACK, and TIME-WAIT, which tcp_time_wait() reaches by handing the connection to a
 * timewait socket and closing the full one), so a connection's end is its one state change to
 * CLOSE from one of these. */
static __always_inline int connected_state(int state) {
  return state == FLOWD_TCP_ESTABLISHED || state == FLOWD_TCP_FIN_WAIT1 ||
         state == FLOWD_TCP_FIN_WAIT2 || state == FLOWD_TCP_CLOSE_WAIT ||
         state == FLOWD_TCP_CLOSING || state == FLOWD_TCP_LAST_ACK;
}

/* Whether this state change ends the connection: CLOSE from one of the states above, or, for a
 * socket its process closed (orphaned: SOCK_DEAD), FIN-WAIT-2, where its FIN is acknowledged and
 * nothing is left to send, while data from the peer only gets a reset. Such a socket usually goes
 * on to TIME-WAIT at once, but when the acknowledgment was processed while close() still held the
 * socket, it stays in FIN-WAIT-2 until tcp_fin_timeout (60 s) runs out: its end is here, and its
 * CLOSE, recorded in flowd_conn_ended, is not a second one. */
static __always_inline int connection_end(struct sock* sk, int oldstate, int newstate) {
  /* The socket's cookie where the kernel gives it (never reused); its address otherwise, which a
   * later socket may reuse: an entry left behind (its CLOSE skipped by the kernel) would then take
   * that socket's CLOSE for a second end, and the periodic resync would have to end it. */
  __u64 id = cfg_cookie ? bpf_get_socket_cookie(sk) : (__u64)(unsigned long)sk;

  if (newstate == FLOWD_TCP_FIN_WAIT2) {
    if (!sock_dead(sk)) return 0;
    __u8 one = 1;

    bpf_map_update_elem(&flowd_conn_ended, &id, &one, BPF_ANY);
    return 1;
  }
  if (newstate != FLOWD_TCP_CLOSE || !connected_state(oldstate)) return 0;
  if (oldstate == FLOWD_TCP_FIN_WAIT2 && bpf_map_delete_elem(&flowd_conn_ended, &id) == 0) return 0;
  return 1;
}

SEC("tp_btf/inet_sock_set_state")
int flowd_conn_state(unsigned long long* ctx) {
  struct sock* sk = (struct sock*)ctx[0];
  int oldstate = (int)ctx[1];
  int newstate = (int)ctx[2];
  __u8 kind = 0;

  /* What may end a connection (connection_end() decides, once the socket is known to be flowd's:
   * other namespaces' sockets never reach its map). */
  const int may_end =
      newstate == FLOWD_TCP_FIN_WAIT2 || (newstate == FLOWD_TCP_CLOSE && connected_state(oldstate));

  if (newstate == FLOWD_TCP_ESTABLISHED &&
      (oldstate == FLOWD_TCP_SYN_SENT || oldstate == FLOWD_TCP_SYN_RECV))
    kind = FLOWD_CONN_START;
  else if (!may_end &&
           (!cfg_owners || (newstate != FLOWD_TCP_SYN_SENT && oldstate != FLOWD_TCP_SYN_SENT &&
                            newstate != FLOWD_TCP_LISTEN &&
                            !(oldstate == FLOWD_TCP_LISTEN && newstate == FLOWD_TCP_CLOSE))))
    return 0;
  if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != FLOWD_IPPROTO_TCP) return 0;
  __u32 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

  if (cfg_netns && netns != cfg_netns) return 0;
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

  if (family != FLOWD_AF_INET && family != FLOWD_AF_INET6) return 0;
  if (!kind && may_end && connection_end(sk, oldstate, newstate)) kind = FLOWD_CONN_END;
  __u16 local_port = __builtin_bswap16(BPF_CORE_READ((struct inet_sock*)sk, inet_sport));

  if (!kind) {
    if (cfg_owners) track_owner(sk, oldstate, newstate, netns, local_port);
    return 0;
  }

  if (cfg_mark) mark(sk, family, local_port, kind);

  struct flowd_conn_event* e = bpf_ringbuf_reserve(&flowd_conn_events, sizeof(*e), 0);

  if (!e) {
    count(FLOWD_CONN_STAT_LOST);
    return 0;
  }
  __builtin_memset(e, 0, sizeof(*e));
  e->ts_boot_ns = bpf_ktime_get_boot_ns();
  e->kind = kind;
  e->oldstate = (__u8)oldstate;
  e->newstate = (__u8)newstate;
  e->family = family;
  e->netns = netns;
  if (cfg_cookie) e->cookie = bpf_get_socket_cookie(sk);
  e->local_port = local_port;
  e->remote_port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
  if (family == FLOWD_AF_INET) {
    __be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
    __be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);

    __builtin_memcpy(e->local_addr, &l, 4);
    __builtin_memcpy(e->remote_addr, &r, 4);
  } else {
    BPF_CORE_READ_INTO(&e->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
    BPF_CORE_READ_INTO(&e->remote_addr, sk, __sk_common.skc_v6_daddr);
  }
  if (cfg_owners && kind == FLOWD_CONN_START) owner_of(sk, oldstate, e);
  bpf_ringbuf_submit(e, 0);
  count(FLOWD_CONN_STAT_EVENTS);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
