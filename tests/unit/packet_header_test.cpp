// SPDX-License-Identifier: Apache-2.0
// The sampled-header parser: VLAN tags, IPv4 options and fragments, IPv6 extension header chains,
// raw IPv4/IPv6 headers, and every way a header can end early.
#include <gtest/gtest.h>

#include "collector/packet_header.hpp"
#include "sflow_builder.hpp"

namespace fc = flowd::collector;
namespace sb = flowd::test::sflow;
using fc::HeaderStatus;

namespace {

fc::PacketHeader parse(const sb::Bytes& b, std::uint32_t proto = fc::kHeaderEthernet) {
  return fc::parse_packet_header(proto, b);
}

TEST(PacketHeader, EthernetIpv4Tcp) {
  const auto h = parse(sb::ethernet(0x0800, sb::ipv4(6, sb::tcp(40001, 7000, 0x12), 0xB8)));
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
  EXPECT_TRUE(h.has_ethernet);
  EXPECT_EQ(h.src_mac[5], 0x01);
  EXPECT_EQ(h.dst_mac[5], 0x02);
  EXPECT_EQ(h.vlan_count, 0);
  EXPECT_EQ(h.ethertype, 0x0800);
  EXPECT_EQ(h.ip_version, 4);
  EXPECT_EQ(h.src_ip[3], 1);
  EXPECT_EQ(h.dst_ip[3], 2);
  EXPECT_EQ(h.tos, 0xB8);
  EXPECT_EQ(h.ip_total_length, 40u);
  EXPECT_TRUE(h.has_protocol);
  EXPECT_EQ(h.protocol, 6);
  EXPECT_TRUE(h.has_ports);
  EXPECT_EQ(h.src_port, 40001);
  EXPECT_EQ(h.dst_port, 7000);
  EXPECT_TRUE(h.has_tcp_flags);
  EXPECT_EQ(h.tcp_flags, 0x12);
}

TEST(PacketHeader, TwoVlanTagsAndAThirdIsNotIp) {
  const auto ip = sb::ipv4(17, sb::udp(5000, 53));
  auto h = parse(sb::ethernet(0x0800, ip, {0x88A80000u | 100, 0x81000000u | 0x2000 | 200}));
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
  EXPECT_EQ(h.vlan_count, 2);
  EXPECT_EQ(h.vlan_id[0], 100);
  EXPECT_EQ(h.vlan_id[1], 200);  // the priority bits are not part of the VID
  EXPECT_EQ(h.dst_port, 53);
  h = parse(sb::ethernet(0x0800, ip, {0x88A80000u | 1, 0x81000000u | 2, 0x81000000u | 3}));
  EXPECT_EQ(h.status, HeaderStatus::kNotIp);
  EXPECT_EQ(h.ip_version, 0);
}

TEST(PacketHeader, NonIpFrames) {
  EXPECT_EQ(parse(sb::ethernet(0x0806, sb::Bytes(28, 0))).status, HeaderStatus::kNotIp);  // ARP
  // An IPv6 ethertype with an IPv4 header inside contradicts itself.
  EXPECT_EQ(parse(sb::ethernet(0x86DD, sb::ipv4(6, sb::tcp(1, 2, 0)))).status,
            HeaderStatus::kBadIp);
  auto bad_ihl = sb::ipv4(6, sb::tcp(1, 2, 0));
  bad_ihl[0] = 0x44;
  EXPECT_EQ(parse(bad_ihl, fc::kHeaderIpv4).status, HeaderStatus::kBadIp);
  EXPECT_EQ(parse(sb::Bytes(60, 0), 7).status, HeaderStatus::kUnsupported);  // PPP
}

TEST(PacketHeader, Ipv4OptionsAndFragments) {
  // IHL 6: the ports sit after 4 option bytes.
  auto h = parse(sb::ipv4(17, sb::udp(1111, 2222), 0, 0, {1, 1, 1, 0}), fc::kHeaderIpv4);
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
  EXPECT_EQ(h.src_port, 1111);
  // First fragment (MF, offset 0): ports present. Later fragment: protocol only.
  h = parse(sb::ipv4(17, sb::udp(1111, 2222), 0, 0x2000), fc::kHeaderIpv4);
  EXPECT_TRUE(h.has_ports);
  EXPECT_FALSE(h.non_first_fragment);
  h = parse(sb::ipv4(17, sb::udp(1111, 2222), 0, 0x2000 | 185), fc::kHeaderIpv4);
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
  EXPECT_TRUE(h.non_first_fragment);
  EXPECT_TRUE(h.has_protocol);
  EXPECT_EQ(h.protocol, 17);
  EXPECT_FALSE(h.has_ports);
}

TEST(PacketHeader, Icmp) {
  auto h = parse(sb::ipv4(1, {8, 0, 0, 0}), fc::kHeaderIpv4);
  EXPECT_TRUE(h.has_icmp);
  EXPECT_EQ(h.icmp_type_code, 0x0800);
  h = parse(sb::ipv6(58, {135, 0, 0, 0}), fc::kHeaderIpv6);
  EXPECT_TRUE(h.has_icmp);
  EXPECT_EQ(h.icmp_type_code, 135 * 256);
  // ICMPv4 inside IPv6 is not ICMP for either.
  h = parse(sb::ipv6(1, {8, 0, 0, 0}), fc::kHeaderIpv6);
  EXPECT_FALSE(h.has_icmp);
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
}

TEST(PacketHeader, Ipv6ExtensionHeadersAreWalkedByLength) {
  // hop-by-hop (16 B) -> routing (8 B) -> first fragment -> AH (12 B) -> destination options ->
  // TCP.
  sb::Bytes ah(12, 0);
  ah[0] = 60;
  ah[1] = 1;  // (1 + 2) * 4 = 12 bytes
  const auto rest =
      sb::concat({sb::ext_header(43, 1), sb::ext_header(44), sb::fragment_header(51, 0, true), ah,
                  sb::ext_header(6), sb::tcp(40002, 7001, 0x18)});
  const auto h = parse(sb::ethernet(0x86DD, sb::ipv6(0, rest, 0xF0D5A, 0x2E)));
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
  EXPECT_EQ(h.ip_version, 6);
  EXPECT_EQ(h.flow_label, 0xF0D5Au);
  EXPECT_EQ(h.tos, 0x2E);
  EXPECT_EQ(h.ip_total_length, 40 + rest.size());
  EXPECT_EQ(h.protocol, 6);
  EXPECT_EQ(h.src_port, 40002);
  EXPECT_EQ(h.dst_port, 7001);
  EXPECT_EQ(h.tcp_flags, 0x18);
}

TEST(PacketHeader, Ipv6LaterFragmentHasNoPorts) {
  const auto h =
      parse(sb::ipv6(44, sb::concat({sb::fragment_header(17, 100, false), sb::udp(1, 2)})),
            fc::kHeaderIpv6);
  EXPECT_TRUE(h.non_first_fragment);
  EXPECT_EQ(h.protocol, 17);
  EXPECT_FALSE(h.has_ports);
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
}

TEST(PacketHeader, Ipv6ChainIsBounded) {
  // Nine destination-options headers: one more than the walk allows.
  sb::Bytes rest;
  for (int i = 0; i < fc::kMaxIpv6ExtensionHeaders; ++i) sb::append(rest, sb::ext_header(60));
  sb::append(rest, sb::ext_header(17));
  sb::append(rest, sb::udp(1, 2));
  auto h = parse(sb::ipv6(60, rest), fc::kHeaderIpv6);
  EXPECT_EQ(h.status, HeaderStatus::kTruncated);
  EXPECT_FALSE(h.has_protocol);
  EXPECT_FALSE(h.has_ports);
  EXPECT_EQ(h.ip_version, 6);  // the IPv6 header itself is known
  // Eight are fine.
  rest.erase(rest.begin(), rest.begin() + 8);
  h = parse(sb::ipv6(60, rest), fc::kHeaderIpv6);
  EXPECT_EQ(h.status, HeaderStatus::kComplete);
  EXPECT_EQ(h.dst_port, 2);
}

TEST(PacketHeader, EveryTruncationKeepsWhatCameBefore) {
  // TCP cut after its flags: the last byte the parser needs is the frame's last byte.
  auto tcp = sb::tcp(1, 2, 0x10);
  tcp.resize(14);
  const auto v6 = sb::ethernet(0x86DD, sb::ipv6(0, sb::concat({sb::ext_header(6), tcp}), 77));
  const auto v4 = sb::ethernet(0x0800, sb::ipv4(6, tcp), {0x81000000u | 5});
  for (const auto* frame : {&v6, &v4}) {
    for (std::size_t n = 0; n < frame->size(); ++n) {
      SCOPED_TRACE(n);
      // Exactly the first n bytes, in their own allocation so that ASan sees any over-read.
      const sb::Bytes cut(frame->begin(), frame->begin() + static_cast<std::ptrdiff_t>(n));
      const auto h = parse(cut);
      EXPECT_EQ(h.status, HeaderStatus::kTruncated);
      EXPECT_EQ(h.has_ethernet, n >= 14);
      if (h.has_tcp_flags) ADD_FAILURE() << "flags from a cut header";
      if (frame == &v6 && n >= 14 + 40) {
        EXPECT_EQ(h.flow_label, 77u);
      }
    }
    EXPECT_EQ(parse(*frame).status, HeaderStatus::kComplete);
  }
}

}  // namespace
