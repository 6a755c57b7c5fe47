// SPDX-License-Identifier: Apache-2.0
// What the NetFlow/IPFIX decoder tests share: fixture files, a small pcap reader, decoding a
// fixture capture whole (decode_case), field accessors, and a writer for crafted IPFIX messages.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/ipfix_stream_framer.hpp"
#include "collector/record_json.hpp"

namespace fc = flowd::collector;

namespace collector_test {

using flowd::IpAddress;
using flowd::TimePoint;

inline const std::string kFixtures = FLOWD_FIXTURES;

inline std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline TimePoint at_seconds(std::int64_t s) {
  return TimePoint{std::chrono::seconds{s}};
}
inline const TimePoint kNow = at_seconds(1795356761);  // 2026-11-22T14:12:41Z, as in the fixtures

struct Datagram {
  std::vector<std::uint8_t> payload;
  fc::Exporter from;
};

inline std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

// A tiny classic-pcap reader: UDP payloads over IPv4/IPv6 on Ethernet (1), BSD loopback (0), raw IP
// (101) or Linux cooked (113) link types; the exporter is the datagram's source address and port.
inline std::vector<Datagram> read_pcap_udp(const std::string& path) {
  const auto f = read_bytes(path);
  std::vector<Datagram> out;
  if (f.size() < 24) return out;
  auto rd32 = [&](std::size_t o, bool swap) {
    std::uint32_t v = f[o] | f[o + 1] << 8 | f[o + 2] << 16 | std::uint32_t{f[o + 3]} << 24;
    return swap ? __builtin_bswap32(v) : v;
  };
  const std::uint32_t magic = rd32(0, false);
  bool swap;
  if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d)
    swap = false;
  else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1)
    swap = true;
  else
    return out;
  const std::uint32_t linktype = rd32(20, swap);
  std::size_t off = 24;
  while (f.size() - off >= 16) {
    const std::uint32_t caplen = rd32(off + 8, swap);
    off += 16;
    if (caplen > f.size() - off) break;
    const std::uint8_t* p = f.data() + off;
    std::size_t n = caplen;
    off += caplen;
    std::size_t l3 = 0;
    if (linktype == 1) {
      if (n < 14) continue;
      l3 = 14;
      std::uint16_t et = be16(p + 12);
      if (et == 0x8100 && n >= 18) {
        l3 = 18;
        et = be16(p + 16);
      }
      if (et != 0x0800 && et != 0x86dd) continue;
    } else if (linktype == 0) {
      l3 = 4;
    } else if (linktype == 101) {
      l3 = 0;
    } else if (linktype == 113) {
      l3 = 16;
    } else {
      ADD_FAILURE() << "unsupported linktype " << linktype << " in " << path;
      return out;
    }
    if (n < l3 + 20) continue;
    const std::uint8_t* ip = p + l3;
    Datagram d;
    std::size_t l4;
    if ((ip[0] >> 4) == 4) {
      if (ip[9] != 17) continue;
      l4 = (ip[0] & 15) * 4u;
      std::uint32_t a =
          static_cast<std::uint32_t>(ip[12]) << 24 | ip[13] << 16 | ip[14] << 8 | ip[15];
      d.from.address = IpAddress::v4(a);
    } else if ((ip[0] >> 4) == 6) {
      if (n < l3 + 40 || ip[6] != 17) continue;
      l4 = 40;
      d.from.address = *IpAddress::parse("::");
      for (int i = 0; i < 16; ++i) d.from.address.bytes[i] = ip[8 + i];
    } else {
      continue;
    }
    if (n < l3 + l4 + 8) continue;
    const std::uint8_t* udp = ip + l4;
    d.from.port = be16(udp);
    const std::size_t ulen = be16(udp + 4);
    if (ulen < 8 || l3 + l4 + ulen > n) continue;
    d.payload.assign(udp + 8, udp + ulen);
    out.push_back(std::move(d));
  }
  return out;
}

inline std::string addr_of(const fc::FlowRecord& r, std::uint16_t v4, std::uint16_t v6) {
  if (const auto* f = r.find(v4)) return f->value.ip.to_string();
  if (const auto* f = r.find(v6)) return f->value.ip.to_string();
  return "?";
}

inline std::int64_t uint_of(const fc::FlowRecord& r, std::uint16_t id, std::uint32_t pen = 0) {
  const auto* f = r.find(id, pen);
  if (!f || f->value.kind != fc::ValueKind::kUnsigned) return -1;
  return static_cast<std::int64_t>(f->value.u);
}

inline std::int64_t hex_of(const nlohmann::json& j) {
  return std::stoll(j.get<std::string>(), nullptr, 16);
}

struct CaseOutput {
  fc::RecordBatch records;
  std::size_t data_records = 0;
  std::uint64_t sequence_lost = 0;
  std::vector<fc::DecodeError> errors;
};

inline CaseOutput decode_case(const std::string& name) {
  CaseOutput o;
  const std::string base = kFixtures + "/netflow/" + name;
  std::vector<std::vector<std::uint8_t>> messages;
  fc::Exporter from;
  fc::DecoderLimits limits;
  if (name == "softflowd-ipfix-tcp") {
    // The TCP stream as received: split on the IPFIX length field; a TCP session (withdrawals
    // honoured).
    limits.udp = false;
    from = {IpAddress::v4(0x7f000001), 40000};
    const auto stream = read_bytes(base + ".bin");
    fc::IpfixStreamFramer framer;
    EXPECT_EQ(framer.feed(stream,
                          [&](std::span<const std::uint8_t> m) {
                            messages.emplace_back(m.begin(), m.end());
                          }),
              fc::IpfixStreamFramer::Status::kOk);
    EXPECT_EQ(framer.buffered(), 0u);
  } else {
    for (auto& d : read_pcap_udp(base + ".pcap")) {
      messages.push_back(std::move(d.payload));
      from = d.from;
    }
  }
  EXPECT_FALSE(messages.empty()) << name;
  fc::Decoder dec(limits);
  for (const auto& m : messages) {
    auto r = dec.decode(m, from, kNow, o.records);
    o.sequence_lost += r.sequence_lost;
    o.errors.insert(o.errors.end(), r.errors.begin(), r.errors.end());
  }
  for (const auto& r : o.records) o.data_records += r.options ? 0 : 1;
  return o;
}

inline std::size_t nfdump_rows(const std::string& name) {
  std::ifstream in(kFixtures + "/netflow/" + name + ".nfdump.csv");
  std::string line;
  std::size_t n = 0;
  bool header = true;
  // Rows up to the "Summary" trailer (then a header line and the totals).
  while (std::getline(in, line)) {
    if (header) {
      header = false;
      continue;
    }
    if (line.rfind("Summary", 0) == 0) break;
    if (!line.empty()) ++n;
  }
  return n;
}

inline std::string iso_ms(const fc::Field* f) {
  return f ? flowd::format_time_iso(f->value.time) : std::string("missing");
}
struct Outcome {
  fc::DecodeResult result;
  fc::RecordBatch records;
};

inline const fc::Exporter kExporter{IpAddress::v4(0xC0000201), 2055};

inline Outcome decode_file(fc::Decoder& dec, const std::string& file, TimePoint now = kNow) {
  Outcome o;
  const auto bytes = read_bytes(kFixtures + "/malformed/" + file);
  EXPECT_FALSE(bytes.empty()) << file;
  o.result = dec.decode(bytes, kExporter, now, o.records);
  return o;
}

inline bool has_error(const fc::DecodeResult& r, fc::DecodeError e) {
  for (auto x : r.errors)
    if (x == e) return true;
  return false;
}
// ---------------------------------------------------------------------------------

struct Writer {
  std::vector<std::uint8_t> b;
  Writer& u8(std::uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Writer& u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    return u8(static_cast<std::uint8_t>(v));
  }
  Writer& u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    return u16(static_cast<std::uint16_t>(v));
  }
};

// IPFIX message: header + sets (each set given as id and body).
inline std::vector<std::uint8_t> ipfix(
    std::uint32_t seq, std::uint32_t odid,
    std::vector<std::pair<std::uint16_t, std::vector<std::uint8_t>>> sets) {
  Writer w;
  std::size_t len = 16;
  for (auto& s : sets) len += 4 + s.second.size();
  w.u16(10).u16(static_cast<std::uint16_t>(len)).u32(1795356761).u32(seq).u32(odid);
  for (auto& s : sets) {
    w.u16(s.first).u16(static_cast<std::uint16_t>(4 + s.second.size()));
    w.b.insert(w.b.end(), s.second.begin(), s.second.end());
  }
  return w.b;
}

// Template 300: sourceIPv4Address, destinationIPv4Address, packetDeltaCount/4.
inline std::vector<std::uint8_t> tmpl300() {
  return Writer{}.u16(300).u16(3).u16(8).u16(4).u16(12).u16(4).u16(2).u16(4).b;
}
inline std::vector<std::uint8_t> data300(int n) {
  Writer w;
  for (int i = 0; i < n; ++i)
    w.u32(0xC0000201).u32(0xC0000202).u32(static_cast<std::uint32_t>(i + 1));
  return w.b;
}
}  // namespace collector_test
