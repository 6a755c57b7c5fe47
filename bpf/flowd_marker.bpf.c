// SPDX-License-Identifier: GPL-2.0-only
/* flowd's flow-label marker: a tc (clsact egress, direct-action) program that writes the Scitags
 * tag into the 20-bit IPv6 flow label (RFC 6437) of the packets of flows user space put in
 * flowd_flow_labels. Traffic class and ECN are left alone; IPv4 and anything unknown passes
 * untouched. */
// The kernel's types (linux/bpf.h) must come before libbpf's helpers: not sorted.
// clang-format off
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "flowd_marker.h"
#include "flowd_label.h"

/* Extension headers walked before giving up (RFC 8200 §4.1 lists at most 6 kinds in one packet). */
#define FLOWD_MAX_EXT_HEADERS 8
/* Headers beyond this many bytes are not searched: it keeps the verifier's offset bounds small. */
#define FLOWD_MAX_HEADER_BYTES 512

/* Set through the skeleton's rodata before load; the verifier prunes the unused mode. */
const volatile __u32 cfg_match_all = 0;
const volatile __u32 cfg_match_all_label =
    0; /* semantic bits only; entropy comes from the flow hash */

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 100000); /* user space sets max_flows before load */
  __type(key, struct flowd_flow_key);
  __type(value, __u32);
} flowd_flow_labels SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FLOWD_STAT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} flowd_stats SEC(".maps");

struct flowd_vlan_hdr {
  __be16 tci;
  __be16 proto;
};

struct flowd_frag_hdr {
  __u8 nexthdr;
  __u8 reserved;
  __be16 frag_off;
  __be32 id;
};

static __always_inline void count(__u32 which) {
  __u64* v = bpf_map_lookup_elem(&flowd_stats, &which);

  if (v) *v += 1;
}

/* Entropy for match-all mode: stable per flow (so a flow keeps one label), different across flows.
 */
static __always_inline __u32 flow_hash(const struct flowd_flow_key* k) {
  const __u32* a = (const __u32*)k->daddr;
  __u32 h = a[0] ^ a[1] ^ a[2] ^ a[3] ^ ((__u32)k->sport << 16 | k->dport) ^ k->proto;

  h *= 0x9E3779B1u;
  h ^= h >> 15;
  h *= 0x85EBCA77u;
  h ^= h >> 13;
  return h;
}

enum flowd_parse {
  FLOWD_PARSE_OK,    /* key filled in */
  FLOWD_PARSE_SKIP,  /* not IPv6 TCP/UDP (or a later fragment): pass untouched */
  FLOWD_PARSE_FAIL,  /* IPv6, but its headers cannot be walked to the ports */
  FLOWD_PARSE_SHORT, /* IPv6, but the headers go past the linear part of the buffer */
};

/* Fills `key` and the offset of the IPv6 header. Every access is checked against data_end. */
static __always_inline int parse(struct __sk_buff* skb, struct flowd_flow_key* key,
                                 __u32* ip6_off) {
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  struct ethhdr* eth = data;
  struct ipv6hdr* ip6;
  __u32 off = sizeof(*eth);
  __u16 proto;
  __u8 nexthdr;
  __be16* ports;
  int i;

  if ((void*)(eth + 1) > data_end) return FLOWD_PARSE_SKIP;
  proto = eth->h_proto;

  /* Up to two VLAN tags: 802.1Q, or 802.1ad outer + 802.1Q inner. */
  for (i = 0; i < 2; i++) {
    struct flowd_vlan_hdr* vh;

    if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) break;
    vh = data + off;
    if ((void*)(vh + 1) > data_end) return FLOWD_PARSE_SKIP;
    proto = vh->proto;
    off += sizeof(*vh);
  }
  if (proto != bpf_htons(ETH_P_IPV6)) return FLOWD_PARSE_SKIP;

  *ip6_off = off;
  ip6 = data + off;
  if ((void*)(ip6 + 1) > data_end) return FLOWD_PARSE_SHORT;
  nexthdr = ip6->nexthdr;
  off += sizeof(*ip6);

  /* Walk hop-by-hop, routing, destination options and a first fragment to reach the ports. */
  for (i = 0; i < FLOWD_MAX_EXT_HEADERS; i++) {
    if (nexthdr == IPPROTO_TCP || nexthdr == IPPROTO_UDP) break;
    if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS) {
      struct ipv6_opt_hdr* h = data + off;

      if ((void*)(h + 1) > data_end) return FLOWD_PARSE_SHORT;
      nexthdr = h->nexthdr;
      off += ((__u32)h->hdrlen + 1) * 8; /* RFC 8200 §4.3: length in 8-octet units, minus one */
    } else if (nexthdr == IPPROTO_FRAGMENT) {
      struct flowd_frag_hdr* fh = data + off;

      if ((void*)(fh + 1) > data_end) return FLOWD_PARSE_SHORT;
      /* Only the first fragment carries the ports (RFC 8200 §4.5). */
      if (fh->frag_off & bpf_htons(0xFFF8)) return FLOWD_PARSE_SKIP;
      nexthdr = fh->nexthdr;
      off += sizeof(*fh);
    } else {
      return FLOWD_PARSE_SKIP; /* ICMPv6, ESP, no next header...: not a flow we tag */
    }
    if (off > FLOWD_MAX_HEADER_BYTES) return FLOWD_PARSE_FAIL;
  }
  if (nexthdr != IPPROTO_TCP && nexthdr != IPPROTO_UDP) return FLOWD_PARSE_FAIL;
  /* TCP and UDP both start with source port, destination port. */
  ports = data + off;
  if ((void*)(ports + 2) > data_end) return FLOWD_PARSE_SHORT;

  __builtin_memset(key, 0, sizeof(*key));
  __builtin_memcpy(key->daddr, &ip6->daddr, sizeof(key->daddr));
  key->sport = ports[0];
  key->dport = ports[1];
  key->proto = nexthdr;
  return FLOWD_PARSE_OK;
}

SEC("tc")
int flowd_mark(struct __sk_buff* skb) {
  struct flowd_flow_key key;
  struct ipv6hdr* ip6;
  void *data, *data_end;
  __u32 ip6_off = 0;
  __be32* word;
  __u32 label;
  int rc;

  count(FLOWD_STAT_SEEN);
  rc = parse(skb, &key, &ip6_off);
  if (rc == FLOWD_PARSE_SHORT && skb->len > skb->data_end - skb->data) {
    /* Headers beyond the linear part (paged skbs): pull in what we walk, once. */
    __u32 want = skb->len < FLOWD_MAX_HEADER_BYTES + 64 ? skb->len : FLOWD_MAX_HEADER_BYTES + 64;

    if (bpf_skb_pull_data(skb, want) == 0) rc = parse(skb, &key, &ip6_off);
  }
  if (rc == FLOWD_PARSE_SHORT || rc == FLOWD_PARSE_FAIL) {
    count(FLOWD_STAT_PARSE_FAIL);
    return TC_ACT_OK;
  }
  if (rc != FLOWD_PARSE_OK) return TC_ACT_OK;

  if (cfg_match_all) {
    label = cfg_match_all_label | (flow_hash(&key) & FLOWD_LABEL_ENTROPY_MASK);
  } else {
    __u32* v = bpf_map_lookup_elem(&flowd_flow_labels, &key);

    if (!v) return TC_ACT_OK;
    label = *v;
  }

  /* Packet pointers are re-read: a pull above invalidates the old ones. */
  data = (void*)(long)skb->data;
  data_end = (void*)(long)skb->data_end;
  if (ip6_off > sizeof(struct ethhdr) + 2 * sizeof(struct flowd_vlan_hdr)) return TC_ACT_OK;
  ip6 = data + ip6_off;
  if ((void*)(ip6 + 1) > data_end) return TC_ACT_OK;

  /* Version (4 bits) and traffic class (8 bits, DSCP + ECN) keep their values. */
  word = (__be32*)ip6;
  *word = bpf_htonl((bpf_ntohl(*word) & 0xFFF00000u) | (label & FLOWD_LABEL_MASK));
  count(FLOWD_STAT_MARKED);
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
