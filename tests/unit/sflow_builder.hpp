// SPDX-License-Identifier: Apache-2.0
// Builders for hand-made sFlow v5 datagrams and the packets inside them (unit tests and the
// synthetic benchmark). Every integer is big-endian; XDR opaques are padded to 4 bytes.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace flowd::test::sflow {

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
inline void put32(Bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xFFFF);
}
inline void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}
inline Bytes words(std::initializer_list<std::uint32_t> ws) {
  Bytes b;
  for (auto w : ws) put32(b, w);
  return b;
}
inline Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const auto& p : parts) append(b, p);
  return b;
}

// data_format: enterprise << 12 | format.
constexpr std::uint32_t data_format(std::uint32_t enterprise, std::uint32_t format) {
  return enterprise << 12 | format;
}

// A flow_record or sample_record: data_format, then the body as an opaque (length, bytes).
inline Bytes tagged(std::uint32_t format, const Bytes& body) {
  Bytes b;
  put32(b, format);
  put32(b, static_cast<std::uint32_t>(body.size()));
  append(b, body);
  return b;
}

// sampled_header: header_protocol, frame_length, stripped, opaque header<> (padded).
inline Bytes sampled_header(const Bytes& header, std::uint32_t frame_length,
                            std::uint32_t protocol = 1, std::uint32_t stripped = 4) {
  Bytes body = words({protocol, frame_length, stripped, static_cast<std::uint32_t>(header.size())});
  append(body, header);
  while (body.size() % 4) body.push_back(0);
  return tagged(data_format(0, 1), body);
}

inline Bytes extended_switch(std::uint32_t in_vlan = 10, std::uint32_t out_vlan = 20) {
  return tagged(data_format(0, 1001), words({in_vlan, 0, out_vlan, 0}));
}

// flow_sample (compact): sequence, source_id, rate, pool, drops, input, output, records.
inline Bytes flow_sample(std::uint32_t seq, std::uint32_t rate, std::uint32_t pool,
                         std::uint32_t input, std::uint32_t output,
                         std::initializer_list<Bytes> records, std::uint32_t source_id = 3,
                         std::uint32_t drops = 0) {
  Bytes body = words({seq, source_id, rate, pool, drops, input, output,
                      static_cast<std::uint32_t>(records.size())});
  for (const auto& r : records) append(body, r);
  return tagged(data_format(0, 1), body);
}

// flow_sample_expanded: sequence, source type, source index, rate, pool, drops, input format/value,
// output format/value, records.
inline Bytes flow_sample_expanded(std::uint32_t seq, std::uint32_t source_type,
                                  std::uint32_t source_index, std::uint32_t rate,
                                  std::uint32_t pool, std::uint32_t in_format,
                                  std::uint32_t in_value, std::uint32_t out_format,
                                  std::uint32_t out_value, std::initializer_list<Bytes> records) {
  Bytes body = words({seq, source_type, source_index, rate, pool, 0, in_format, in_value,
                      out_format, out_value, static_cast<std::uint32_t>(records.size())});
  for (const auto& r : records) append(body, r);
  return tagged(data_format(0, 3), body);
}

// counters_sample with one generic interface counters record of `n` zero words.
inline Bytes counters_sample(std::uint32_t seq, std::size_t n = 22) {
  Bytes rec(n * 4, 0);
  Bytes body = words({seq, 3, 1});
  append(body, tagged(data_format(0, 1), rec));
  return tagged(data_format(0, 2), body);
}

// sample_datagram_v5 with an IPv4 agent address; `count` overrides the number of samples.
inline Bytes datagram(std::uint32_t seq, std::initializer_list<Bytes> samples,
                      std::uint32_t agent = 0xC0000201, std::uint32_t sub_agent = 0,
                      std::int64_t count = -1) {
  Bytes b = words({5, 1, agent, sub_agent, seq, 123456,
                   count >= 0 ? static_cast<std::uint32_t>(count)
                              : static_cast<std::uint32_t>(samples.size())});
  for (const auto& s : samples) append(b, s);
  return b;
}

// ---- packets --------------------------------------------------------------------------------

inline Bytes ethernet(std::uint16_t type, const Bytes& payload,
                      std::initializer_list<std::uint32_t> tags = {}) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};  // dst 02::02, src 02::01
  for (auto t : tags) put32(b, t);                             // TPID << 16 | TCI
  put16(b, type);
  append(b, payload);
  return b;
}

inline Bytes ipv4(std::uint8_t proto, const Bytes& l4, std::uint8_t tos = 0, std::uint16_t frag = 0,
                  const Bytes& options = {}) {
  const auto ihl = static_cast<std::uint8_t>(5 + options.size() / 4);
  Bytes b = {static_cast<std::uint8_t>(0x40 | ihl), tos};
  put16(b, static_cast<std::uint32_t>(ihl * 4 + l4.size()));
  put16(b, 0x1234);
  put16(b, frag);
  b.push_back(64);
  b.push_back(proto);
  put16(b, 0);
  put32(b, 0xC0000201);  // 192.0.2.1
  put32(b, 0xC0000202);  // 192.0.2.2
  append(b, options);
  append(b, l4);
  return b;
}

// IPv6 2001:db8::1 -> 2001:db8::2 whose payload `rest` starts with header `next`.
inline Bytes ipv6(std::uint8_t next, const Bytes& rest, std::uint32_t flow_label = 0,
                  std::uint8_t tclass = 0) {
  Bytes b;
  put32(b, 6u << 28 | std::uint32_t{tclass} << 20 | (flow_label & 0xFFFFF));
  put16(b, static_cast<std::uint32_t>(rest.size()));
  b.push_back(next);
  b.push_back(64);
  Bytes src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  append(b, src);
  src[15] = 2;
  append(b, src);
  append(b, rest);
  return b;
}

// An 8-byte-unit extension header (hop-by-hop, routing, destination options) of `units` + 1 units.
inline Bytes ext_header(std::uint8_t next, std::uint8_t units = 0) {
  Bytes b((units + 1u) * 8, 0);
  b[0] = next;
  b[1] = units;
  return b;
}
inline Bytes fragment_header(std::uint8_t next, std::uint16_t offset_units, bool more) {
  Bytes b = {next, 0};
  put16(b, static_cast<std::uint32_t>(offset_units << 3 | (more ? 1 : 0)));
  put32(b, 0xABCD);
  return b;
}

inline Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::uint16_t flags) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put32(b, 1);
  put32(b, 0);
  put16(b, 0x5000u | flags);
  put16(b, 65535);
  put32(b, 0);
  return b;
}
inline Bytes udp(std::uint16_t sport, std::uint16_t dport) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, 8);
  put16(b, 0);
  return b;
}

}  // namespace flowd::test::sflow
