// SPDX-License-Identifier: GPL-2.0-only
/* flowd's TCP connection events: on the kernel's sock:inet_sock_set_state tracepoint (BTF-typed,
 * tp_btf), a TCP socket of flowd's network namespace reaching ESTABLISHED or leaving it is written
 * to a ring buffer for the kernel plugin. A record the full ring cannot take is counted, so that
 * user space repairs the loss with a sock_diag dump instead of losing it silently. CO-RE: the
 * kernel structures below are the few fields read, relocated by libbpf against the running
 * kernel's BTF, so one object runs on every kernel with BTF (5.8 or later for
 * bpf_ktime_get_boot_ns and the ring buffer). */
// The kernel's types (linux/bpf.h) must come before libbpf's helpers: not sorted.
// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
// clang-format on

#include "flowd_conn.h"

#define FLOWD_AF_INET 2
#define FLOWD_AF_INET6 10
#define FLOWD_IPPROTO_TCP 6
#define FLOWD_TCP_ESTABLISHED 1
#define FLOWD_TCP_SYN_SENT 2
#define FLOWD_TCP_SYN_RECV 3

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
} __attribute__((preserve_access_index));

struct sock {
  struct sock_common __sk_common;
  __u16 sk_protocol; /* a bit field before Linux 5.6: read with BPF_CORE_READ_BITFIELD_PROBED */
} __attribute__((preserve_access_index));

/* Set through the skeleton's rodata before load: flowd's own network namespace (inode of
 * /proc/self/ns/net); 0 takes every namespace. */
const volatile __u32 cfg_netns = 0;

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 20); /* user space sets ring_buffer_size before load */
} flowd_conn_events SEC(".maps");

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

SEC("tp_btf/inet_sock_set_state")
int flowd_conn_state(unsigned long long* ctx) {
  struct sock* sk = (struct sock*)ctx[0];
  int oldstate = (int)ctx[1];
  int newstate = (int)ctx[2];
  __u8 kind;

  if (newstate == FLOWD_TCP_ESTABLISHED &&
      (oldstate == FLOWD_TCP_SYN_SENT || oldstate == FLOWD_TCP_SYN_RECV))
    kind = FLOWD_CONN_START;
  else if (oldstate == FLOWD_TCP_ESTABLISHED)
    kind = FLOWD_CONN_END;
  else
    return 0;
  if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != FLOWD_IPPROTO_TCP) return 0;
  __u32 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

  if (cfg_netns && netns != cfg_netns) return 0;
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

  if (family != FLOWD_AF_INET && family != FLOWD_AF_INET6) return 0;

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
  e->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
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
  bpf_ringbuf_submit(e, 0);
  count(FLOWD_CONN_STAT_EVENTS);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
