// SPDX-License-Identifier: Apache-2.0
// The first bytes of a sampled packet (sFlow v5 `sampled_header`), parsed down to the transport
// ports: Ethernet with up to two VLAN tags, IPv4, IPv6 with its extension headers, TCP, UDP, SCTP,
// ICMP and ICMPv6. Pure and allocation-free: it only reads the span it is given, and a header cut
// short by the agent's snap length yields the fields before the cut.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace flowd::collector {

// sFlow v5 `header_protocol` values the parser understands (sFlow v5, "enum header_protocol").
inline constexpr std::uint32_t kHeaderEthernet = 1;  // ETHERNET-ISO88023
inline constexpr std::uint32_t kHeaderIpv4 = 11;
inline constexpr std::uint32_t kHeaderIpv6 = 12;

enum class HeaderStatus : std::uint8_t {
  kComplete,     // parsed as far as there is anything to parse (ports, or none for this protocol)
  kTruncated,    // the bytes end before that point; the fields before the cut are set
  kNotIp,        // a frame that carries neither IPv4 nor IPv6 (ARP, LLDP, a third VLAN tag...)
  kBadIp,        // an IP header that contradicts itself (version nibble, IHL < 5)
  kUnsupported,  // a header_protocol other than Ethernet, IPv4 or IPv6
};

struct PacketHeader {
  HeaderStatus status = HeaderStatus::kComplete;
  // Ethernet (header_protocol 1 only).
  bool has_ethernet = false;
  std::array<std::uint8_t, 6> dst_mac{};
  std::array<std::uint8_t, 6> src_mac{};
  std::uint8_t vlan_count = 0;             // 802.1Q / 802.1ad tags walked, outer first (at most 2)
  std::array<std::uint16_t, 2> vlan_id{};  // the 12-bit VID of each tag
  std::uint16_t ethertype = 0;             // after the tags
  // IP: version 0 when no IP header was reached.
  std::uint8_t ip_version = 0;
  std::array<std::uint8_t, 16> src_ip{};  // IPv4 in the first 4 bytes, network order
  std::array<std::uint8_t, 16> dst_ip{};
  std::uint8_t tos = 0;               // IPv4 TOS byte / IPv6 traffic class (DSCP and ECN)
  std::uint32_t flow_label = 0;       // IPv6 flow label (20 bits), RFC 6437
  std::uint32_t ip_total_length = 0;  // IPv4 total length; IPv6 40 + payload length (bytes)
  bool has_protocol = false;          // false when IPv6 extension headers could not be walked
  std::uint8_t protocol = 0;          // IPv4 protocol / the upper-layer IPv6 next header
  bool non_first_fragment = false;    // fragment offset != 0: no transport header here
  // Transport.
  bool has_ports = false;  // TCP, UDP, SCTP (and UDP-Lite)
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  bool has_tcp_flags = false;
  std::uint16_t tcp_flags = 0;  // the 12 low bits of TCP header word 6 (RFC 7125 layout)
  bool has_icmp = false;
  std::uint16_t icmp_type_code = 0;  // type * 256 + code (ICMP for IPv4, ICMPv6 for IPv6)
};

// At most this many IPv6 extension headers are walked before giving up (kTruncated): a chain of
// tiny headers cannot make the parse loop long.
inline constexpr int kMaxIpv6ExtensionHeaders = 8;

// Parses `bytes`, the sampled header of sFlow `header_protocol` (1 Ethernet, 11 IPv4, 12 IPv6).
// Never reads outside `bytes`.
PacketHeader parse_packet_header(std::uint32_t header_protocol,
                                 std::span<const std::uint8_t> bytes);

}  // namespace flowd::collector
