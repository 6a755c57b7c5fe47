// SPDX-License-Identifier: Apache-2.0
// privileged: runs the real flowd_mark tc program (bpf/flowd_marker.bpf.c) through
// BPF_PROG_TEST_RUN on hand-built packets, katran-style: a table of fixtures {packet, map entries,
// expected label or "unchanged", expected stat deltas}. Every output packet is compared byte for
// byte with its input: only the 20 flow-label bits of the IPv6 header may differ.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "flowd/scitags_label.hpp"
#include "flowd_marker.h"
#include "flowd_marker.skel.h"

namespace flowd::test {
namespace {

constexpr const char* kPrivileged = "privileged: needs root (CAP_BPF)";
constexpr std::size_t kNoIpv6 = static_cast<std::size_t>(-1);

using Bytes = std::vector<std::uint8_t>;
using Addr6 = std::array<std::uint8_t, 16>;

Addr6 addr6(const char* text) {
  Addr6 a{};
  if (inet_pton(AF_INET6, text, a.data()) != 1) std::abort();
  return a;
}

const Addr6 kSrc = addr6("2001:db8:a::1");
const Addr6 kDst = addr6("2001:db8:b::2");
const Addr6 kOtherDst = addr6("2001:db8:b::3");
const Addr6 kOtherSrc = addr6("2001:db8:c::7");

constexpr std::uint16_t kEthIpv6 = 0x86DD;
constexpr std::uint16_t kEthIpv4 = 0x0800;
constexpr std::uint16_t kEthArp = 0x0806;
constexpr std::uint16_t kEth8021Q = 0x8100;
constexpr std::uint16_t kEth8021AD = 0x88A8;

constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kIcmpv6 = 58;
constexpr std::uint8_t kNoNext = 59;
constexpr std::uint8_t kDestOpts = 60;

// ---- packet building -------------------------------------------------------------------------

struct Built {
  Bytes bytes;
  std::size_t ip6 = kNoIpv6;  // offset of the (first) IPv6 header, where the label lives
};

// Appends headers in wire order; build() fills in the IPv6 payload length, the IPv4 total length
// and the UDP length from the full packet, then applies cut() as a capture would truncate it.
class Packet {
 public:
  Packet& eth(std::uint16_t type) {
    put({0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01});
    return be16(type);
  }
  // One VLAN tag after an eth()/vlan() whose type was a TPID: TCI, then the next EtherType.
  Packet& vlan(std::uint16_t tci, std::uint16_t next_type) {
    be16(tci);
    return be16(next_type);
  }
  Packet& ipv6(std::uint8_t next, std::uint8_t tclass = 0, std::uint32_t flow_label = 0,
               const Addr6& dst = kDst, const Addr6& src = kSrc) {
    if (ip6_ == kNoIpv6) ip6_ = b_.size();
    ip6_len_.push_back(b_.size());
    be32((6u << 28) | (std::uint32_t{tclass} << 20) | (flow_label & 0xFFFFFu));
    be16(0);  // payload length, set by build()
    put({next, 64});
    put(src);
    put(dst);
    return *this;
  }
  // Hop-by-hop or destination options (PadN-filled), or a routing header of an unassigned type with
  // segments left 0 (which a node skips, RFC 8200 §4.4). Length 8 * (hdrlen + 1) bytes.
  Packet& ext(std::uint8_t type, std::uint8_t next, std::uint8_t hdrlen = 0) {
    const std::size_t len = 8u * (hdrlen + 1u);
    put({next, hdrlen});
    if (type == kRouting) {
      put({253, 0});  // routing type 253 (RFC 4727 experimental), segments left 0
      b_.resize(b_.size() + len - 4, 0);
      return *this;
    }
    std::size_t left = len - 2;
    while (left > 0) {
      if (left == 1) {
        put({0x00});  // Pad1
        left = 0;
      } else {
        std::size_t n = std::min<std::size_t>(left - 2, 255);
        put({0x01, static_cast<std::uint8_t>(n)});  // PadN
        b_.resize(b_.size() + n, 0);
        left -= n + 2;
      }
    }
    return *this;
  }
  // Fragment header; offset in 8-octet units.
  Packet& frag(std::uint8_t next, std::uint16_t offset, bool more) {
    put({next, 0});
    be16(static_cast<std::uint16_t>((offset << 3) | (more ? 1 : 0)));
    return be32(0x0badcafe);
  }
  Packet& tcp(std::uint16_t sport, std::uint16_t dport) {
    be16(sport);
    be16(dport);
    be32(0x01020304);     // seq
    be32(0x05060708);     // ack
    put({5 << 4, 0x18});  // data offset 5, PSH|ACK
    be16(65535);          // window
    be16(0);              // checksum (not checked by the program)
    return be16(0);       // urgent pointer
  }
  Packet& udp(std::uint16_t sport, std::uint16_t dport) {
    be16(sport);
    be16(dport);
    udp_len_.push_back(b_.size());
    be16(0);         // length, set by build()
    return be16(0);  // checksum
  }
  Packet& icmpv6_echo() {
    put({128, 0});
    be16(0);
    be16(0x1234);
    return be16(1);
  }
  Packet& ipv4(std::uint8_t proto, const char* src = "192.0.2.1",
               const char* dst = "198.51.100.2") {
    ip4_len_.push_back(b_.size());
    put({0x45, 0xB8});  // version 4, IHL 5, DSCP EF
    be16(0);            // total length, set by build()
    be16(0x4242);
    be16(0x4000);  // DF
    put({64, proto});
    be16(0);
    std::uint8_t a[4];
    inet_pton(AF_INET, src, a);
    put({a[0], a[1], a[2], a[3]});
    inet_pton(AF_INET, dst, a);
    return put({a[0], a[1], a[2], a[3]});
  }
  Packet& payload(std::size_t n) {
    for (std::size_t i = 0; i < n; i++) b_.push_back(static_cast<std::uint8_t>(0xA0 + i));
    return *this;
  }
  Packet& raw(std::initializer_list<std::uint8_t> bytes) { return put(bytes); }
  // The built packet keeps only its first n bytes (lengths still describe the whole packet).
  Packet& cut(std::size_t n) {
    cut_ = n;
    return *this;
  }
  std::size_t size() const { return b_.size(); }

  Built build() const {
    Bytes b = b_;
    for (std::size_t o : ip6_len_) set16(b, o + 4, b.size() - o - 40);
    for (std::size_t o : ip4_len_) set16(b, o + 2, b.size() - o);
    for (std::size_t o : udp_len_) set16(b, o, b.size() - (o - 4));
    if (cut_ < b.size()) b.resize(cut_);
    return {b, ip6_ < b.size() ? ip6_ : kNoIpv6};
  }
  operator Built() const {
    return build();
  }  // NOLINT: lets fixtures list a Packet where a Built goes

 private:
  Packet& put(std::initializer_list<std::uint8_t> bytes) {
    b_.insert(b_.end(), bytes);
    return *this;
  }
  Packet& put(const Addr6& a) {
    b_.insert(b_.end(), a.begin(), a.end());
    return *this;
  }
  Packet& be16(std::uint16_t v) {
    return put({static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)});
  }
  Packet& be32(std::uint32_t v) {
    be16(static_cast<std::uint16_t>(v >> 16));
    return be16(static_cast<std::uint16_t>(v));
  }
  static void set16(Bytes& b, std::size_t o, std::size_t v) {
    b[o] = static_cast<std::uint8_t>(v >> 8);
    b[o + 1] = static_cast<std::uint8_t>(v);
  }

  Bytes b_;
  std::size_t ip6_ = kNoIpv6;
  std::vector<std::size_t> ip6_len_, ip4_len_, udp_len_;
  std::size_t cut_ = static_cast<std::size_t>(-1);
};

std::uint32_t label_at(const Bytes& b, std::size_t ip6) {
  return ((std::uint32_t{b[ip6 + 1]} & 0xFu) << 16) | (std::uint32_t{b[ip6 + 2]} << 8) | b[ip6 + 3];
}

std::string hex(std::uint32_t v) {
  char s[16];
  std::snprintf(s, sizeof s, "0x%05x", v);
  return s;
}

// Every byte equal, except the 20 flow-label bits of the IPv6 header at `ip6` (if any).
::testing::AssertionResult only_label_may_differ(const Bytes& in, const Bytes& out,
                                                 std::size_t ip6) {
  if (in.size() != out.size())
    return ::testing::AssertionFailure()
           << "output is " << out.size() << " bytes, input " << in.size();
  std::ostringstream bad;
  for (std::size_t i = 0; i < in.size(); i++) {
    if (in[i] == out[i]) continue;
    bool label_bits = ip6 != kNoIpv6 && ((i == ip6 + 1 && ((in[i] ^ out[i]) & 0xF0) == 0) ||
                                         i == ip6 + 2 || i == ip6 + 3);
    if (!label_bits) {
      char s[48];
      std::snprintf(s, sizeof s, " [%zu] 0x%02x->0x%02x", i, in[i], out[i]);
      bad << s;
    }
  }
  if (!bad.str().empty())
    return ::testing::AssertionFailure() << "bytes outside the flow label changed:" << bad.str();
  return ::testing::AssertionSuccess();
}

// ---- the program ------------------------------------------------------------------------------

struct Entry {
  Addr6 dst;
  std::uint16_t sport;
  std::uint16_t dport;
  std::uint8_t proto;
  std::uint32_t label;
};

struct Stats {
  std::uint64_t seen = 0, marked = 0, parse_fail = 0;
  bool operator==(const Stats&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Stats& s) {
  return os << "{seen " << s.seen << ", marked " << s.marked << ", parse_fail " << s.parse_fail
            << "}";
}

std::string libbpf_log;

int collect_libbpf_log(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  libbpf_log += buf;
  return n;
}

// One loaded instance of the skeleton (map mode, or match-all with its label in rodata).
class LoadedMarker {
 public:
  // 0, or the negative errno of open/load (libbpf_log has the verifier's words).
  int load(bool match_all, std::uint32_t match_all_label) {
    libbpf_set_print(collect_libbpf_log);
    libbpf_log.clear();
    skel_ = flowd_marker__open();
    if (!skel_) return -errno;
    skel_->rodata->cfg_match_all = match_all ? 1 : 0;
    skel_->rodata->cfg_match_all_label = match_all_label;
    return flowd_marker__load(skel_);
  }
  ~LoadedMarker() { flowd_marker__destroy(skel_); }

  int insert(const Entry& e) {
    flowd_flow_key key;
    std::memset(&key, 0, sizeof key);
    std::memcpy(key.daddr, e.dst.data(), 16);
    key.sport = htons(e.sport);
    key.dport = htons(e.dport);
    key.proto = e.proto;
    return bpf_map__update_elem(skel_->maps.flowd_flow_labels, &key, sizeof key, &e.label,
                                sizeof e.label, BPF_ANY);
  }

  Stats stats() const {
    const int cpus = libbpf_num_possible_cpus();
    std::vector<std::uint64_t> v(static_cast<std::size_t>(cpus > 0 ? cpus : 1));
    auto sum = [&](std::uint32_t which) {
      std::uint64_t total = 0;
      if (bpf_map__lookup_elem(skel_->maps.flowd_stats, &which, sizeof which, v.data(),
                               v.size() * sizeof v[0], 0) == 0)
        for (auto x : v) total += x;
      return total;
    };
    return {sum(FLOWD_STAT_SEEN), sum(FLOWD_STAT_MARKED), sum(FLOWD_STAT_PARSE_FAIL)};
  }

  struct Run {
    int err = 0;
    std::uint32_t retval = 0;
    Bytes out;
  };
  Run run(const Bytes& in) const {
    Run r;
    r.out.resize(in.size() + 256);
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = in.data();
    opts.data_out = r.out.data();
    opts.data_size_in = static_cast<std::uint32_t>(in.size());
    opts.data_size_out = static_cast<std::uint32_t>(r.out.size());
    opts.repeat = 1;
    r.err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.flowd_mark), &opts);
    if (r.err != 0) r.err = -errno;
    r.retval = opts.retval;
    r.out.resize(opts.data_size_out);
    return r;
  }

 private:
  flowd_marker* skel_ = nullptr;
};

// ---- the fixtures -----------------------------------------------------------------------------

enum class Expect {
  kUnchanged,  // byte-identical output
  kLabel,      // flow label == label, nothing else changed
  kMatchAll,   // semantic bits == the match-all label, entropy bits only from the entropy mask
};

struct Case {
  const char* name;  // the gtest name: letters, digits and '_'
  const char* description;
  Built packet;
  std::vector<Entry> entries;
  Expect expect;
  std::uint32_t label;  // kLabel: the label expected in the output
  Stats delta;          // expected change of flowd_stats (summed over CPUs)
  // Newer kernels' BPF_PROG_TEST_RUN refuses (EINVAL) a frame whose EtherType is IPv6 but that has
  // fewer than 40 bytes after the Ethernet header, before the program runs: such a fixture is
  // skipped there, and a VLAN-tagged twin (which the kernel does not inspect) covers the branch.
  bool kernel_may_refuse = false;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.description;
}

// A GridFTP-like TCP flow and an XRootD-like UDP flow; labels use every one of the 20 bits'
// nibbles.
const std::uint32_t kTcpLabel = flowd_make_label(200, 7, 0xC0103);
const std::uint32_t kUdpLabel = flowd_make_label(37, 42, 0x40002);
const Entry kTcpFlow{kDst, 40000, 2811, kTcp, kTcpLabel};
const Entry kUdpFlow{kDst, 50000, 1094, kUdp, kUdpLabel};
const std::vector<Entry> kFlows{kTcpFlow, kUdpFlow};

const std::uint32_t kMatchAllLabel = flowd_make_label(300, 11, 0);

constexpr Stats kMarked{1, 1, 0};
constexpr Stats kPassed{1, 0, 0};
constexpr Stats kParseFail{1, 0, 1};

// IPv6 followed by `n` destination-options headers, then TCP on the flow in kTcpFlow.
Packet dest_opts_chain(int n) {
  Packet p;
  p.eth(kEthIpv6).ipv6(kDestOpts, 0xB9, 0x11111);
  for (int i = 0; i < n; i++) p.ext(kDestOpts, i + 1 < n ? kDestOpts : kTcp);
  return p.tcp(40000, 2811).payload(8);
}

std::vector<Case> map_cases() {
  const Packet tcp_hdrs = Packet().eth(kEthIpv6).ipv6(kHopByHop).ext(kHopByHop, kTcp);
  return {
      {"ipv6_tcp_match",
       "IPv6/TCP on a flow in the map (TC 0xB9: DSCP EF + ECT(1), old label 0x12345)",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0x12345).tcp(40000, 2811).payload(32), kFlows,
       Expect::kLabel, kTcpLabel, kMarked},
      {"ipv6_tcp_match_old_label_all_ones", "an old label of 0xfffff is replaced, not OR-ed",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0xFFFFF).tcp(40000, 2811).payload(32), kFlows,
       Expect::kLabel, kTcpLabel, kMarked},
      {"ipv6_udp_match", "IPv6/UDP on a flow in the map",
       Packet().eth(kEthIpv6).ipv6(kUdp, 0x00, 0).udp(50000, 1094).payload(64), kFlows,
       Expect::kLabel, kUdpLabel, kMarked},
      {"ecn_ce_preserved", "ECN CE with DSCP EF (TC 0xBB) survives the write",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xBB, 0).tcp(40000, 2811).payload(16), kFlows,
       Expect::kLabel, kTcpLabel, kMarked},
      {"ecn_ce_only_preserved", "ECN CE alone (TC 0x03) survives the write",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0x03, 0).tcp(40000, 2811), kFlows, Expect::kLabel,
       kTcpLabel, kMarked},
      {"other_source_address_matches",
       "the key has no source address: another source still matches",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0x20, 0, kDst, kOtherSrc).tcp(40000, 2811), kFlows,
       Expect::kLabel, kTcpLabel, kMarked},
      {"map_value_wider_than_20_bits",
       "a map value of 0xffffffff writes 0xfffff and leaves TC/version alone",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0x00, 0).tcp(40000, 2811),
       {{kDst, 40000, 2811, kTcp, 0xFFFFFFFFu}},
       Expect::kLabel,
       0xFFFFF,
       kMarked},
      {"no_match_other_dport", "destination port differs -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0x12345).tcp(40000, 2812).payload(8), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"no_match_other_sport", "source port differs -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0x12345).tcp(40001, 2811).payload(8), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"no_match_swapped_ports", "the reverse direction (ports swapped) -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kTcp).tcp(2811, 40000), kFlows, Expect::kUnchanged, 0, kPassed},
      {"no_match_other_dst", "destination address differs -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0x12345, kOtherDst).tcp(40000, 2811).payload(8),
       kFlows, Expect::kUnchanged, 0, kPassed},
      {"no_match_other_proto", "UDP on the TCP flow's address and ports -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kUdp, 0xB9, 0x12345).udp(40000, 2811).payload(8), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"no_match_empty_map",
       "the TCP flow with an empty map -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0x12345).tcp(40000, 2811),
       {},
       Expect::kUnchanged,
       0,
       kPassed},
      {"vlan_8021q", "one 802.1Q tag",
       Packet()
           .eth(kEth8021Q)
           .vlan(100, kEthIpv6)
           .ipv6(kTcp, 0xB9, 0x54321)
           .tcp(40000, 2811)
           .payload(8),
       kFlows, Expect::kLabel, kTcpLabel, kMarked},
      {"vlan_qinq_88a8_8100", "802.1ad outer tag then 802.1Q inner tag",
       Packet()
           .eth(kEth8021AD)
           .vlan(10, kEth8021Q)
           .vlan(200, kEthIpv6)
           .ipv6(kUdp, 0xB9, 0x54321)
           .udp(50000, 1094)
           .payload(8),
       kFlows, Expect::kLabel, kUdpLabel, kMarked},
      {"vlan_three_tags_not_parsed",
       "a third tag is beyond what the program walks -> unchanged, no parse failure",
       Packet()
           .eth(kEth8021AD)
           .vlan(10, kEth8021Q)
           .vlan(20, kEth8021Q)
           .vlan(30, kEthIpv6)
           .ipv6(kTcp)
           .tcp(40000, 2811),
       kFlows, Expect::kUnchanged, 0, kPassed},
      {"vlan_tag_truncated",
       "802.1Q tag cut after the TCI -> unchanged (not yet IPv6: no parse failure)",
       Packet().eth(kEth8021Q).raw({0x00, 0x64}), kFlows, Expect::kUnchanged, 0, kPassed},
      {"ext_hbh_routing_dstopts_tcp",
       "hop-by-hop, routing (24 bytes), destination options, then TCP",
       Packet()
           .eth(kEthIpv6)
           .ipv6(kHopByHop, 0xB9, 0x0F0F0)
           .ext(kHopByHop, kRouting)
           .ext(kRouting, kDestOpts, 2)
           .ext(kDestOpts, kTcp, 1)
           .tcp(40000, 2811)
           .payload(16),
       kFlows, Expect::kLabel, kTcpLabel, kMarked},
      {"ext_eight_headers_tcp", "8 destination-options headers (the walk limit) then TCP -> marked",
       dest_opts_chain(8), kFlows, Expect::kLabel, kTcpLabel, kMarked},
      {"ext_nine_headers_tcp", "9 destination-options headers then TCP -> unchanged, parse failure",
       dest_opts_chain(9), kFlows, Expect::kUnchanged, 0, kParseFail},
      {"ext_long_within_512",
       "one 448-byte destination-options header (ports at byte 502) -> marked",
       Packet().eth(kEthIpv6).ipv6(kDestOpts).ext(kDestOpts, kTcp, 55).tcp(40000, 2811), kFlows,
       Expect::kLabel, kTcpLabel, kMarked},
      {"ext_long_past_512",
       "one 488-byte destination-options header (ports at byte 542) -> parse failure",
       Packet().eth(kEthIpv6).ipv6(kDestOpts).ext(kDestOpts, kTcp, 60).tcp(40000, 2811), kFlows,
       Expect::kUnchanged, 0, kParseFail},
      {"frag_first_udp", "first fragment (offset 0, M=1) carrying the UDP header -> marked",
       Packet()
           .eth(kEthIpv6)
           .ipv6(kFragment, 0xB9, 0x00001)
           .frag(kUdp, 0, true)
           .udp(50000, 1094)
           .payload(64),
       kFlows, Expect::kLabel, kUdpLabel, kMarked},
      {"frag_first_after_hbh_tcp", "hop-by-hop, first fragment, then TCP -> marked",
       Packet()
           .eth(kEthIpv6)
           .ipv6(kHopByHop)
           .ext(kHopByHop, kFragment)
           .frag(kTcp, 0, true)
           .tcp(40000, 2811),
       kFlows, Expect::kLabel, kTcpLabel, kMarked},
      {"frag_non_first",
       "non-first fragment (offset 1480) whose payload looks like the UDP flow's ports -> "
       "unchanged",
       Packet()
           .eth(kEthIpv6)
           .ipv6(kFragment, 0xB9, 0x00001)
           .frag(kUdp, 185, false)
           .udp(50000, 1094)
           .payload(32),
       kFlows, Expect::kUnchanged, 0, kPassed},
      {"frag_non_first_offset_8",
       "non-first fragment with the smallest offset (8 bytes) -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kFragment).frag(kTcp, 1, true).tcp(40000, 2811), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"truncated_ethernet_only", "only an Ethernet header saying IPv6 -> parse failure",
       Packet().eth(kEthIpv6), kFlows, Expect::kUnchanged, 0, kParseFail, true},
      {"truncated_ipv6_header", "IPv6 header cut at 39 of 40 bytes -> parse failure",
       Packet().eth(kEthIpv6).ipv6(kTcp).tcp(40000, 2811).cut(14 + 39), kFlows, Expect::kUnchanged,
       0, kParseFail, true},
      {"truncated_vlan_then_nothing",
       "Ethernet + 802.1Q tag saying IPv6, then nothing -> parse failure",
       Packet().eth(kEth8021Q).vlan(100, kEthIpv6), kFlows, Expect::kUnchanged, 0, kParseFail},
      {"truncated_vlan_ipv6_header",
       "802.1Q tag, IPv6 header cut at 39 of 40 bytes -> parse failure",
       Packet().eth(kEth8021Q).vlan(100, kEthIpv6).ipv6(kTcp).tcp(40000, 2811).cut(18 + 39), kFlows,
       Expect::kUnchanged, 0, kParseFail},
      {"truncated_qinq_ipv6_header",
       "802.1ad + 802.1Q tags, IPv6 header cut at 8 bytes -> parse failure",
       Packet()
           .eth(kEth8021AD)
           .vlan(1, kEth8021Q)
           .vlan(2, kEthIpv6)
           .ipv6(kUdp)
           .udp(50000, 1094)
           .cut(22 + 8),
       kFlows, Expect::kUnchanged, 0, kParseFail},
      {"truncated_ipv6_no_l4", "complete IPv6 header saying TCP, no TCP bytes -> parse failure",
       Packet().eth(kEthIpv6).ipv6(kTcp).tcp(40000, 2811).cut(14 + 40), kFlows, Expect::kUnchanged,
       0, kParseFail},
      {"truncated_ext_header", "hop-by-hop header cut to 1 byte -> parse failure",
       Packet().eth(kEthIpv6).ipv6(kHopByHop).ext(kHopByHop, kTcp).cut(14 + 40 + 1), kFlows,
       Expect::kUnchanged, 0, kParseFail},
      {"truncated_frag_header", "fragment header cut to 7 bytes -> parse failure",
       Packet().eth(kEthIpv6).ipv6(kFragment).frag(kUdp, 0, true).udp(50000, 1094).cut(14 + 40 + 7),
       kFlows, Expect::kUnchanged, 0, kParseFail},
      {"truncated_ports_after_ext", "TCP cut to 3 bytes after a hop-by-hop header -> parse failure",
       Packet(tcp_hdrs).tcp(40000, 2811).cut(tcp_hdrs.size() + 3), kFlows, Expect::kUnchanged, 0,
       kParseFail},
      {"truncated_ports_only_after_ext",
       "TCP cut to its 4 port bytes after a hop-by-hop header -> still marked",
       Packet(tcp_hdrs).tcp(40000, 2811).cut(tcp_hdrs.size() + 4), kFlows, Expect::kLabel,
       kTcpLabel, kMarked},
      {"ext_length_past_end",
       "hop-by-hop header claiming 40 bytes in a packet that ends after 16 -> parse failure",
       Packet().eth(kEthIpv6).ipv6(kHopByHop).raw(
           {kTcp, 4, 1, 2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}),
       kFlows, Expect::kUnchanged, 0, kParseFail},
      {"ipv4_tcp", "IPv4/TCP -> unchanged (the flow label is IPv6 only)",
       Packet().eth(kEthIpv4).ipv4(kTcp).tcp(40000, 2811).payload(16), kFlows, Expect::kUnchanged,
       0, kPassed},
      {"ipv4_udp_vlan", "IPv4/UDP behind an 802.1Q tag -> unchanged",
       Packet().eth(kEth8021Q).vlan(5, kEthIpv4).ipv4(kUdp).udp(50000, 1094), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"arp", "ARP -> unchanged", Packet().eth(kEthArp).raw({0, 1, 8, 0, 6, 4, 0, 1}).payload(20),
       kFlows, Expect::kUnchanged, 0, kPassed},
      {"icmpv6", "ICMPv6 echo request -> unchanged, no parse failure",
       Packet().eth(kEthIpv6).ipv6(kIcmpv6, 0xB9, 0x12345).icmpv6_echo().payload(16), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"icmpv6_after_hbh",
       "hop-by-hop then ICMPv6 (an MLD report's shape) -> unchanged, no parse failure",
       Packet().eth(kEthIpv6).ipv6(kHopByHop).ext(kHopByHop, kIcmpv6).icmpv6_echo(), kFlows,
       Expect::kUnchanged, 0, kPassed},
      {"no_next_header", "IPv6 with next header 59 -> unchanged, no parse failure",
       Packet().eth(kEthIpv6).ipv6(kNoNext).payload(8), kFlows, Expect::kUnchanged, 0, kPassed},
  };
}

std::vector<Case> match_all_cases() {
  const std::vector<Entry> other_label{{kDst, 40000, 2811, kTcp, flowd_make_label(1, 1, 0)}};
  return {
      {"ipv6_tcp",
       "IPv6/TCP, empty map",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0x12345).tcp(40000, 2811).payload(32),
       {},
       Expect::kMatchAll,
       0,
       kMarked},
      {"ipv6_udp",
       "IPv6/UDP, empty map",
       Packet().eth(kEthIpv6).ipv6(kUdp, 0x00, 0).udp(1234, 53).payload(8),
       {},
       Expect::kMatchAll,
       0,
       kMarked},
      {"map_ignored", "the map's label for this flow is not used in match-all mode",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0).tcp(40000, 2811), other_label, Expect::kMatchAll,
       0, kMarked},
      {"ecn_ce_preserved",
       "TC 0xBB (EF + CE) survives the write",
       Packet().eth(kEthIpv6).ipv6(kTcp, 0xBB, 0xFFFFF).tcp(1, 2),
       {},
       Expect::kMatchAll,
       0,
       kMarked},
      {"vlan_qinq",
       "802.1ad + 802.1Q then IPv6/TCP",
       Packet().eth(kEth8021AD).vlan(1, kEth8021Q).vlan(2, kEthIpv6).ipv6(kTcp).tcp(5000, 6000),
       {},
       Expect::kMatchAll,
       0,
       kMarked},
      {"ext_headers",
       "hop-by-hop, routing, destination options then UDP",
       Packet()
           .eth(kEthIpv6)
           .ipv6(kHopByHop)
           .ext(kHopByHop, kRouting)
           .ext(kRouting, kDestOpts)
           .ext(kDestOpts, kUdp)
           .udp(7, 9),
       {},
       Expect::kMatchAll,
       0,
       kMarked},
      {"frag_first",
       "first fragment with UDP",
       Packet().eth(kEthIpv6).ipv6(kFragment).frag(kUdp, 0, true).udp(50000, 1094).payload(32),
       {},
       Expect::kMatchAll,
       0,
       kMarked},
      {"frag_non_first",
       "non-first fragment -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kFragment).frag(kUdp, 185, false).payload(32),
       {},
       Expect::kUnchanged,
       0,
       kPassed},
      {"ipv4_tcp",
       "IPv4/TCP -> unchanged",
       Packet().eth(kEthIpv4).ipv4(kTcp).tcp(40000, 2811).payload(8),
       {},
       Expect::kUnchanged,
       0,
       kPassed},
      {"ipv4_udp",
       "IPv4/UDP -> unchanged",
       Packet().eth(kEthIpv4).ipv4(kUdp).udp(50000, 1094).payload(8),
       {},
       Expect::kUnchanged,
       0,
       kPassed},
      {"icmpv6",
       "ICMPv6 -> unchanged",
       Packet().eth(kEthIpv6).ipv6(kIcmpv6).icmpv6_echo(),
       {},
       Expect::kUnchanged,
       0,
       kPassed},
      {"truncated_ipv6_header",
       "IPv6 header cut -> unchanged, parse failure",
       Packet().eth(kEthIpv6).ipv6(kTcp).tcp(1, 2).cut(14 + 20),
       {},
       Expect::kUnchanged,
       0,
       kParseFail,
       true},
      {"truncated_vlan_ipv6_header",
       "802.1Q tag, IPv6 header cut -> unchanged, parse failure",
       Packet().eth(kEth8021Q).vlan(3, kEthIpv6).ipv6(kTcp).tcp(1, 2).cut(18 + 20),
       {},
       Expect::kUnchanged,
       0,
       kParseFail},
      {"truncated_ports",
       "TCP cut to 2 bytes -> unchanged, parse failure",
       Packet().eth(kEthIpv6).ipv6(kTcp).tcp(1, 2).cut(14 + 40 + 2),
       {},
       Expect::kUnchanged,
       0,
       kParseFail},
      {"ext_nine_headers",
       "9 destination-options headers -> unchanged, parse failure",
       dest_opts_chain(9),
       {},
       Expect::kUnchanged,
       0,
       kParseFail},
  };
}

// ---- the test suites --------------------------------------------------------------------------

class MarkerFixture : public ::testing::Test {
 protected:
  void load(bool match_all, std::uint32_t match_all_label = 0) {
    if (geteuid() != 0) GTEST_SKIP() << kPrivileged;
    marker_ = std::make_unique<LoadedMarker>();
    int rc = marker_->load(match_all, match_all_label);
    if (rc == -EPERM) GTEST_SKIP() << kPrivileged << " (bpf() said EPERM)";
    ASSERT_EQ(rc, 0) << "the kernel refused flowd_mark: " << std::strerror(-rc) << "\n"
                     << libbpf_log;
  }

  // Runs `in` once; checks TC_ACT_OK, the size and that nothing outside the label changed.
  LoadedMarker::Run run(const Built& in) {
    auto r = marker_->run(in.bytes);
    if (r.err == -EPERM) {
      skip_eperm();
      return r;
    }
    EXPECT_EQ(r.err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-r.err);
    EXPECT_EQ(r.retval, static_cast<std::uint32_t>(TC_ACT_OK));
    EXPECT_TRUE(only_label_may_differ(in.bytes, r.out, in.ip6));
    return r;
  }

  void check(const Case& c) {
    for (const auto& e : c.entries)
      ASSERT_EQ(marker_->insert(e), 0) << "map update: " << std::strerror(errno);
    Stats before = marker_->stats();
    if (c.kernel_may_refuse) {
      auto probe = marker_->run(c.packet.bytes);
      if (probe.err == -EINVAL)
        GTEST_SKIP() << "this kernel's BPF_PROG_TEST_RUN refuses an IPv6 frame with fewer than 40 "
                        "bytes after "
                        "the Ethernet header (EINVAL before the program runs); the VLAN-tagged "
                        "fixture covers "
                        "the same branch";
      before = marker_->stats();
    }
    auto r = run(c.packet);
    if (IsSkipped()) return;
    ASSERT_EQ(r.err, 0);
    Stats after = marker_->stats();
    EXPECT_EQ((Stats{after.seen - before.seen, after.marked - before.marked,
                     after.parse_fail - before.parse_fail}),
              c.delta);
    ASSERT_EQ(r.out.size(), c.packet.bytes.size());
    switch (c.expect) {
      case Expect::kUnchanged:
        EXPECT_TRUE(r.out == c.packet.bytes)
            << "the packet was modified; its flow label is now "
            << (c.packet.ip6 == kNoIpv6 ? "n/a" : hex(label_at(r.out, c.packet.ip6)));
        break;
      case Expect::kLabel:
        ASSERT_NE(c.packet.ip6, kNoIpv6);
        EXPECT_EQ(hex(label_at(r.out, c.packet.ip6)), hex(c.label));
        break;
      case Expect::kMatchAll: {
        ASSERT_NE(c.packet.ip6, kNoIpv6);
        std::uint32_t label = label_at(r.out, c.packet.ip6);
        EXPECT_EQ(hex(label & kLabelSemanticMask), hex(kMatchAllLabel));
        EXPECT_EQ(label & ~(kLabelSemanticMask | kLabelEntropyMask), 0u) << hex(label);
        break;
      }
    }
  }

  void skip_eperm() { GTEST_SKIP() << kPrivileged << " (BPF_PROG_TEST_RUN said EPERM)"; }

  std::unique_ptr<LoadedMarker> marker_;
};

class MarkerProgTable : public MarkerFixture, public ::testing::WithParamInterface<Case> {
 protected:
  void SetUp() override { load(false); }
};

class MarkerMatchAllTable : public MarkerFixture, public ::testing::WithParamInterface<Case> {
 protected:
  void SetUp() override { load(true, kMatchAllLabel); }
};

TEST_P(MarkerProgTable, Fixture) {
  check(GetParam());
}
TEST_P(MarkerMatchAllTable, Fixture) {
  check(GetParam());
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Marker, MarkerProgTable, ::testing::ValuesIn(map_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Marker, MarkerMatchAllTable, ::testing::ValuesIn(match_all_cases()),
                         case_name);

// Only bytes 1-3 of the IPv6 header may change, and of byte 1 only its low nibble: across extreme
// traffic classes, old labels and map values (including bits above the 20-bit label).
class MarkerProgBytes : public MarkerFixture {
 protected:
  void SetUp() override { load(false); }
};

TEST_F(MarkerProgBytes, OnlyBytes1To3OfIpv6HeaderChange) {
  std::uint16_t sport = 30000;
  for (std::uint8_t tclass : {0x00, 0x0F, 0xF0, 0xFF, 0xB9}) {
    for (std::uint32_t old_label : {0x00000u, 0xFFFFFu, 0xA5A5Au}) {
      for (std::uint32_t value :
           {0x00000000u, 0x000FFFFFu, 0xFFFFFFFFu, 0xFFF00000u, 0x0005A5A5u}) {
        ++sport;
        SCOPED_TRACE("tc " + hex(tclass) + " old label " + hex(old_label) + " map value " +
                     hex(value));
        ASSERT_EQ(marker_->insert({kDst, sport, 443, kTcp, value}), 0);
        Built in = Packet().eth(kEthIpv6).ipv6(kTcp, tclass, old_label).tcp(sport, 443).payload(8);
        auto r = run(in);
        if (IsSkipped()) return;
        ASSERT_EQ(r.out.size(), in.bytes.size());
        const std::size_t ip6 = in.ip6;
        for (std::size_t i = 0; i < in.bytes.size(); i++) {
          if (i < ip6 + 1 || i > ip6 + 3) {
            EXPECT_EQ(r.out[i], in.bytes[i]) << "byte " << i;
          }
        }
        EXPECT_EQ(r.out[ip6 + 1] & 0xF0, in.bytes[ip6 + 1] & 0xF0)
            << "traffic class low nibble changed";
        EXPECT_EQ(r.out[ip6] >> 4, 6) << "version changed";
        EXPECT_EQ(hex(label_at(r.out, ip6)), hex(value & 0xFFFFF));
      }
    }
  }
}

class MarkerMatchAll : public MarkerFixture {
 protected:
  void SetUp() override { load(true, kMatchAllLabel); }

  std::uint32_t label_of(const Built& p) {
    auto r = run(p);
    if (r.err != 0 || r.out.size() != p.bytes.size() || p.ip6 == kNoIpv6) {
      ADD_FAILURE() << "no output packet";
      return 0xFFFFFFFFu;
    }
    return label_at(r.out, p.ip6);
  }
};

// One flow, one label: the entropy bits depend only on (dst, sport, dport, proto).
TEST_F(MarkerMatchAll, SameFlowSameLabel) {
  const std::uint32_t first =
      label_of(Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0).tcp(40000, 2811).payload(8));
  if (IsSkipped()) return;
  EXPECT_EQ(hex(first & kLabelSemanticMask), hex(kMatchAllLabel));
  const std::vector<Built> same_flow{
      Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0).tcp(40000, 2811).payload(8),
      Packet()
          .eth(kEthIpv6)
          .ipv6(kTcp, 0x00, 0xFFFFF)
          .tcp(40000, 2811)
          .payload(100),  // other TC, old label, size
      Packet().eth(kEthIpv6).ipv6(kTcp, 0xB9, 0, kDst, kOtherSrc).tcp(40000, 2811),  // other source
                                                                                     // address
      Packet().eth(kEth8021Q).vlan(7, kEthIpv6).ipv6(kTcp).tcp(40000, 2811),         // behind a tag
      Packet().eth(kEthIpv6).ipv6(kHopByHop).ext(kHopByHop, kTcp).tcp(40000, 2811),  // behind an
                                                                                     // ext header
      Packet().eth(kEthIpv6).ipv6(kFragment).frag(kTcp, 0, true).tcp(40000, 2811),   // first
                                                                                     // fragment
  };
  for (std::size_t i = 0; i < same_flow.size(); i++) {
    for (int repeat = 0; repeat < 3; repeat++)
      EXPECT_EQ(hex(label_of(same_flow[i])), hex(first)) << "packet " << i << " run " << repeat;
  }
}

// Different flows get different entropy bits, for at least one of a few tries in each dimension.
TEST_F(MarkerMatchAll, DifferentFlowsDifferInEntropy) {
  auto tcp = [](const Addr6& dst, std::uint16_t sport, std::uint16_t dport) {
    return Packet().eth(kEthIpv6).ipv6(kTcp, 0, 0, dst).tcp(sport, dport).build();
  };
  const std::uint32_t base = label_of(tcp(kDst, 40000, 2811));
  if (IsSkipped()) return;
  std::set<std::uint32_t> by_sport, by_dport, by_dst;
  for (std::uint16_t i = 1; i <= 8; i++) {
    by_sport.insert(label_of(tcp(kDst, static_cast<std::uint16_t>(40000 + i), 2811)) &
                    kLabelEntropyMask);
    by_dport.insert(label_of(tcp(kDst, 40000, static_cast<std::uint16_t>(2811 + i))) &
                    kLabelEntropyMask);
    Addr6 dst = kDst;
    dst[15] = static_cast<std::uint8_t>(dst[15] + i);
    by_dst.insert(label_of(tcp(dst, 40000, 2811)) & kLabelEntropyMask);
  }
  const std::uint32_t e = base & kLabelEntropyMask;
  EXPECT_TRUE(by_sport.size() > 1 || !by_sport.contains(e))
      << "8 source ports all got entropy " << hex(e);
  EXPECT_TRUE(by_dport.size() > 1 || !by_dport.contains(e))
      << "8 destination ports all got entropy " << hex(e);
  EXPECT_TRUE(by_dst.size() > 1 || !by_dst.contains(e))
      << "8 destinations all got entropy " << hex(e);
  const std::uint32_t udp = label_of(Packet().eth(kEthIpv6).ipv6(kUdp).udp(40000, 2811).build());
  EXPECT_EQ(hex(udp & kLabelSemanticMask), hex(kMatchAllLabel));
}

}  // namespace
}  // namespace flowd::test
