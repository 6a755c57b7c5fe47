// SPDX-License-Identifier: Apache-2.0
// Sampled packet headers: Ethernet (IEEE 802.3, 802.1Q/802.1ad tags), IPv4 (RFC 791), IPv6 (RFC
// 8200 with its extension headers, RFC 4302 AH), TCP/UDP/SCTP ports, ICMP/ICMPv6 type and code.
#include "collector/packet_header.hpp"

#include <cstring>

namespace flowd::collector {
namespace {

using Bytes = std::span<const std::uint8_t>;

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86DD;
constexpr std::uint16_t kEtherVlan = 0x8100;  // IEEE 802.1Q C-tag
constexpr std::uint16_t kEtherQinq = 0x88A8;  // IEEE 802.1ad S-tag

constexpr std::uint8_t kIcmp = 1;
constexpr std::uint8_t kTcp = 6;
constexpr std::uint8_t kUdp = 17;
constexpr std::uint8_t kIcmpv6 = 58;
constexpr std::uint8_t kSctp = 132;
constexpr std::uint8_t kUdpLite = 136;

// IPv6 extension headers that are walked (RFC 8200 §4; AH, RFC 4302 §2.2, counts its length in
// 4-byte units). ESP (50) hides what follows and ends the walk with that protocol.
constexpr std::uint8_t kHopByHop = 0;
constexpr std::uint8_t kRouting = 43;
constexpr std::uint8_t kFragment = 44;
constexpr std::uint8_t kAuth = 51;
constexpr std::uint8_t kDestOptions = 60;

// The transport header at `l4` (the protocol is known, this is not a later fragment).
void parse_transport(Bytes b, std::size_t l4, PacketHeader& h) {
  const std::size_t n = b.size() - l4;
  const std::uint8_t* p = b.data() + l4;
  switch (h.protocol) {
    case kTcp:
      if (n < 4) break;
      h.has_ports = true;
      h.src_port = be16(p);
      h.dst_port = be16(p + 2);
      if (n < 14) break;
      h.has_tcp_flags = true;
      h.tcp_flags = be16(p + 12) & 0x0FFF;  // without the data offset (RFC 7125)
      return;
    case kUdp:
    case kSctp:
    case kUdpLite:
      if (n < 4) break;
      h.has_ports = true;
      h.src_port = be16(p);
      h.dst_port = be16(p + 2);
      return;
    case kIcmp:
    case kIcmpv6:
      // ICMP belongs to IPv4 and ICMPv6 to IPv6; the other pairing is just another protocol number.
      if ((h.protocol == kIcmp) != (h.ip_version == 4)) return;
      if (n < 2) break;
      h.has_icmp = true;
      h.icmp_type_code = be16(p);
      return;
    default:
      return;
  }
  h.status = HeaderStatus::kTruncated;
}

void parse_ipv4(Bytes b, std::size_t off, PacketHeader& h) {
  if (b.size() - off < 20) {
    h.status = HeaderStatus::kTruncated;
    return;
  }
  const std::uint8_t* p = b.data() + off;
  const std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0F) * 4;
  if ((p[0] >> 4) != 4 || ihl < 20) {
    h.status = HeaderStatus::kBadIp;
    return;
  }
  h.ip_version = 4;
  h.tos = p[1];
  h.ip_total_length = be16(p + 2);
  h.protocol = p[9];
  h.has_protocol = true;
  std::memcpy(h.src_ip.data(), p + 12, 4);
  std::memcpy(h.dst_ip.data(), p + 16, 4);
  // RFC 791: only the fragment at offset 0 carries the transport header.
  if ((be16(p + 6) & 0x1FFF) != 0) {
    h.non_first_fragment = true;
    return;
  }
  if (b.size() - off < ihl) {  // options cut off: the transport header is beyond the sample
    h.status = HeaderStatus::kTruncated;
    return;
  }
  parse_transport(b, off + ihl, h);
}

void parse_ipv6(Bytes b, std::size_t off, PacketHeader& h) {
  if (b.size() - off < 40) {
    h.status = HeaderStatus::kTruncated;
    return;
  }
  const std::uint8_t* p = b.data() + off;
  const std::uint32_t word0 = be32(p);
  if ((word0 >> 28) != 6) {
    h.status = HeaderStatus::kBadIp;
    return;
  }
  h.ip_version = 6;
  h.tos = static_cast<std::uint8_t>(word0 >> 20);
  h.flow_label = word0 & 0xFFFFF;
  h.ip_total_length = 40u + be16(p + 4);
  std::memcpy(h.src_ip.data(), p + 8, 16);
  std::memcpy(h.dst_ip.data(), p + 24, 16);
  std::uint8_t next = p[6];
  std::size_t at = off + 40;
  for (int i = 0;; ++i) {
    if (next != kHopByHop && next != kRouting && next != kFragment && next != kAuth &&
        next != kDestOptions)
      break;  // the upper-layer protocol (or one we do not walk, such as ESP or No Next Header)
    if (i == kMaxIpv6ExtensionHeaders ||
        b.size() - at < 8) {  // every extension header is >= 8 bytes
      h.status = HeaderStatus::kTruncated;
      return;
    }
    const std::uint8_t* e = b.data() + at;
    std::size_t len;
    if (next == kFragment) {
      len = 8;
      if ((be16(e + 2) >> 3) !=
          0) {  // a later fragment: the protocol is known, the ports are not here
        h.protocol = e[0];
        h.has_protocol = true;
        h.non_first_fragment = true;
        return;
      }
    } else if (next == kAuth) {
      len = (std::size_t{e[1]} + 2) * 4;
    } else {
      len = (std::size_t{e[1]} + 1) * 8;
    }
    next = e[0];
    if (b.size() - at < len) {
      h.status = HeaderStatus::kTruncated;
      return;
    }
    at += len;
  }
  h.protocol = next;
  h.has_protocol = true;
  parse_transport(b, at, h);
}

}  // namespace

PacketHeader parse_packet_header(std::uint32_t header_protocol, std::span<const std::uint8_t> b) {
  PacketHeader h;
  switch (header_protocol) {
    case kHeaderIpv4:
      parse_ipv4(b, 0, h);
      return h;
    case kHeaderIpv6:
      parse_ipv6(b, 0, h);
      return h;
    case kHeaderEthernet:
      break;
    default:
      h.status = HeaderStatus::kUnsupported;
      return h;
  }
  if (b.size() < 14) {
    h.status = HeaderStatus::kTruncated;
    return h;
  }
  h.has_ethernet = true;
  std::memcpy(h.dst_mac.data(), b.data(), 6);
  std::memcpy(h.src_mac.data(), b.data() + 6, 6);
  std::uint16_t type = be16(b.data() + 12);
  std::size_t off = 14;
  while (type == kEtherVlan || type == kEtherQinq) {
    if (h.vlan_count == 2) {  // a third tag: not something a sampled header should need
      h.ethertype = type;
      h.status = HeaderStatus::kNotIp;
      return h;
    }
    if (b.size() - off < 4) {
      h.ethertype = type;
      h.status = HeaderStatus::kTruncated;
      return h;
    }
    h.vlan_id[h.vlan_count++] = be16(b.data() + off) & 0x0FFF;
    type = be16(b.data() + off + 2);
    off += 4;
  }
  h.ethertype = type;
  if (type == kEtherIpv4) {
    parse_ipv4(b, off, h);
  } else if (type == kEtherIpv6) {
    parse_ipv6(b, off, h);
  } else {
    h.status = HeaderStatus::kNotIp;
  }
  return h;
}

}  // namespace flowd::collector
