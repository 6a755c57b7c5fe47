// SPDX-License-Identifier: Apache-2.0
// Per-packet cost of the flowd_mark tc program (bpf/flowd_marker.bpf.c), measured in the kernel
// with BPF_PROG_TEST_RUN: repeat = 1,000,000 runs of one packet, opts.duration = average ns per
// run. Each case is measured over several rounds; the median and the minimum are printed. Needs
// root.
//
//   flowd_marker_bench [rounds]
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "flowd/scitags_label.hpp"
#include "flowd_marker.h"
#include "flowd_marker.skel.h"

namespace {

constexpr std::uint32_t kRepeat = 1000000;
constexpr std::uint32_t kBigMap = 100000;  // the default [backend.ebpf] max_flows

using Bytes = std::vector<std::uint8_t>;

void be16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}

std::array<std::uint8_t, 16> addr6(const char* s) {
  std::array<std::uint8_t, 16> a{};
  inet_pton(AF_INET6, s, a.data());
  return a;
}

const auto kSrc = addr6("2001:db8:a::1");
const auto kDst = addr6("2001:db8:b::2");

void ethernet(Bytes& b, std::uint16_t type) {
  b.insert(b.end(), {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01});
  be16(b, type);
}

void tcp(Bytes& b, std::uint16_t sport, std::uint16_t dport) {
  be16(b, sport);
  be16(b, dport);
  b.insert(b.end(), {0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0});
}

// Ethernet / IPv6 (TC 0xB9) / TCP / 64 bytes of payload.
Bytes ipv6_tcp(std::uint16_t sport, std::uint16_t dport) {
  Bytes b;
  ethernet(b, 0x86DD);
  b.insert(b.end(), {0x6B, 0x90, 0x00, 0x00});
  be16(b, 20 + 64);
  b.insert(b.end(), {IPPROTO_TCP, 64});
  b.insert(b.end(), kSrc.begin(), kSrc.end());
  b.insert(b.end(), kDst.begin(), kDst.end());
  tcp(b, sport, dport);
  b.resize(b.size() + 64, 0xA5);
  return b;
}

// Ethernet / IPv4 / TCP / 64 bytes of payload.
Bytes ipv4_tcp() {
  Bytes b;
  ethernet(b, 0x0800);
  b.insert(b.end(), {0x45, 0xB8});
  be16(b, 20 + 20 + 64);
  b.insert(b.end(), {0, 1, 0x40, 0, 64, IPPROTO_TCP, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2});
  tcp(b, 40000, 2811);
  b.resize(b.size() + 64, 0xA5);
  return b;
}

// Filler flow i: its own destination (2001:db8:b:0:0:80:<i>) and source port, never the probe flow.
flowd_flow_key key_for(std::uint32_t i) {
  flowd_flow_key k;
  std::memset(&k, 0, sizeof k);
  std::memcpy(k.daddr, kDst.data(), 16);
  k.daddr[11] = 0x80;
  for (int b = 0; b < 4; b++) k.daddr[12 + b] = static_cast<std::uint8_t>(i >> (24 - 8 * b));
  k.sport = htons(static_cast<std::uint16_t>(10000 + (i & 0x7FFF)));
  k.dport = htons(443);
  k.proto = IPPROTO_TCP;
  return k;
}

struct Marker {
  flowd_marker* skel = nullptr;
  ~Marker() { flowd_marker__destroy(skel); }

  bool load(bool match_all) {
    skel = flowd_marker__open();
    if (!skel) return false;
    bpf_map__set_max_entries(skel->maps.flowd_flow_labels, kBigMap);
    skel->rodata->cfg_match_all = match_all ? 1 : 0;
    skel->rodata->cfg_match_all_label = flowd::make_label(300, 11, 0);
    int rc = flowd_marker__load(skel);
    if (rc != 0) {
      std::fprintf(stderr, "cannot load flowd_mark: %s\n", std::strerror(-rc));
      return false;
    }
    return true;
  }

  int map_fd() const { return bpf_map__fd(skel->maps.flowd_flow_labels); }

  // `filler` unrelated flows, then the flow of ipv6_tcp(40000, 2811) last (so LRU keeps it).
  bool fill(std::uint32_t filler) {
    const std::uint32_t label = flowd::make_label(200, 7, 0x3);
    for (std::uint32_t i = 1; i <= filler; i++) {
      flowd_flow_key k = key_for(i);
      if (bpf_map_update_elem(map_fd(), &k, &label, BPF_ANY) != 0) {
        std::fprintf(stderr, "map update %u: %s\n", i, std::strerror(errno));
        return false;
      }
    }
    flowd_flow_key k;
    std::memset(&k, 0, sizeof k);
    std::memcpy(k.daddr, kDst.data(), 16);
    k.sport = htons(40000);
    k.dport = htons(2811);
    k.proto = IPPROTO_TCP;
    return bpf_map_update_elem(map_fd(), &k, &label, BPF_ANY) == 0;
  }

  std::uint32_t entries() const {
    std::uint32_t n = 0;
    flowd_flow_key cur, next;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(map_fd(), prev, &next) == 0) {
      cur = next;
      prev = &cur;
      n++;
    }
    return n;
  }

  // Average ns per run over `repeat` runs; -1 on error. `out` receives the packet after one run.
  long run(const Bytes& in, std::uint32_t repeat, Bytes* out = nullptr) const {
    Bytes buf(in.size() + 256);
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = in.data();
    opts.data_size_in = static_cast<std::uint32_t>(in.size());
    opts.data_out = buf.data();
    opts.data_size_out = static_cast<std::uint32_t>(buf.size());
    opts.repeat = repeat;
    if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.flowd_mark), &opts) != 0) {
      std::fprintf(stderr, "BPF_PROG_TEST_RUN: %s\n", std::strerror(errno));
      return -1;
    }
    if (out) *out = Bytes(buf.begin(), buf.begin() + opts.data_size_out);
    return static_cast<long>(opts.duration);
  }
};

bool marked(const Marker& m, const Bytes& pkt) {
  Bytes out;
  if (m.run(pkt, 1, &out) < 0) return false;
  return out.size() == pkt.size() && !std::equal(out.begin(), out.end(), pkt.begin());
}

int measure(const char* name, const Marker& m, const Bytes& pkt, bool expect_marked, int rounds) {
  if (marked(m, pkt) != expect_marked) {
    std::fprintf(stderr, "%s: the packet was %s, expected %s\n", name,
                 expect_marked ? "not marked" : "marked", expect_marked ? "marked" : "untouched");
    return 1;
  }
  std::vector<long> ns;
  for (int r = 0; r < rounds; r++) {
    long d = m.run(pkt, kRepeat);
    if (d < 0) return 1;
    ns.push_back(d);
  }
  std::sort(ns.begin(), ns.end());
  std::printf("%-52s %4ld ns/packet (median of %d x %u runs; min %ld)\n", name, ns[ns.size() / 2],
              rounds, kRepeat, ns.front());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  if (geteuid() != 0) {
    std::fprintf(stderr,
                 "flowd_marker_bench: needs root (CAP_BPF) to load and run the BPF program\n");
    return 77;
  }
  int cpus = libbpf_num_possible_cpus();
  std::printf("flowd_mark via BPF_PROG_TEST_RUN, %zu-byte IPv6/TCP packet, %d possible CPUs\n",
              ipv6_tcp(40000, 2811).size(), cpus);

  int failed = 0;
  {
    Marker small;
    if (!small.load(false) || !small.fill(9)) return 1;
    std::printf("map mode, %u entries in the flow map:\n", small.entries());
    failed |= measure("  match IPv6/TCP", small, ipv6_tcp(40000, 2811), true, rounds);
    failed |=
        measure("  no match IPv6/TCP (other port)", small, ipv6_tcp(40000, 2812), false, rounds);
    failed |= measure("  IPv4/TCP", small, ipv4_tcp(), false, rounds);
  }
  {
    Marker big;
    if (!big.load(false) || !big.fill(kBigMap - 1)) return 1;
    std::printf("map mode, %u entries in the flow map (max %u):\n", big.entries(), kBigMap);
    failed |= measure("  match IPv6/TCP", big, ipv6_tcp(40000, 2811), true, rounds);
    failed |=
        measure("  no match IPv6/TCP (other port)", big, ipv6_tcp(40000, 2812), false, rounds);
    failed |= measure("  IPv4/TCP", big, ipv4_tcp(), false, rounds);
  }
  {
    Marker all;
    if (!all.load(true)) return 1;
    std::printf("match-all mode (empty flow map):\n");
    failed |= measure("  IPv6/TCP", all, ipv6_tcp(40000, 2811), true, rounds);
    failed |= measure("  IPv4/TCP", all, ipv4_tcp(), false, rounds);
  }
  return failed;
}
