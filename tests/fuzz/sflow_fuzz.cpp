// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the sFlow v5 decoder and the sampled-header parser. The first input byte picks
// what runs on the rest: bit 7 set -> parse_packet_header with header_protocol (bits 0-1: Ethernet,
// IPv4, IPv6, other); otherwise a datagram for one of two persistent SflowDecoders (bit 0: with
// apply_sampling), from one of four exporters (bits 1-2), so agents' sequence state carries across
// inputs as on a socket. Records land in one reused RecordBatch (stale fields must never leak) and
// must all render as JSON.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "collector/packet_header.hpp"
#include "collector/sflow.hpp"

#include "direct_writer_check.hpp"

namespace fc = flowd::collector;

namespace {

fc::SflowLimits limits(bool sampling) {
  fc::SflowLimits l;
  l.apply_sampling = sampling;
  l.max_agents = 64;  // keep memory bounded across millions of inputs
  l.agent_timeout = std::chrono::seconds{30};
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fc::SflowDecoder plain(limits(false));
  static fc::SflowDecoder sampling(limits(true));
  static fc::RecordBatch out;
  static std::uint64_t calls = 0;
  static flowd::TimePoint now = flowd::TimePoint{std::chrono::seconds{1795356761}};

  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  if (selector & 0x80) {
    static constexpr std::uint32_t kProtocols[] = {fc::kHeaderEthernet, fc::kHeaderIpv4,
                                                   fc::kHeaderIpv6, 7};
    const auto h = fc::parse_packet_header(kProtocols[selector & 3], rest);
    if (h.vlan_count > 2 || (h.has_ports && !h.has_protocol)) __builtin_trap();
    return 0;
  }
  fc::SflowDecoder& dec = (selector & 1) ? sampling : plain;
  const fc::Exporter from{flowd::IpAddress::v4(0xC0000200u | ((selector >> 1) & 3u)), 6343};
  out.clear();
  const auto result = dec.decode(rest, from, now, out);
  if (result.records != out.size()) __builtin_trap();
  flowd::fuzz::check_direct_writer(out);

  ++calls;
  now += std::chrono::seconds{1};
  if (calls % 64 == 0) dec.expire(now);
  return 0;
}
