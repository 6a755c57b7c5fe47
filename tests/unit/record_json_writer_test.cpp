// SPDX-License-Identifier: Apache-2.0
// RecordJsonWriter (the dump's and Kafka's record JSON) writes byte for byte what the DOM path,
// collector::to_json(record).dump() (`flowd decode`), writes: on every record of every capture of
// ../shared/fixtures/netflow/ and tests/fixtures/sflow/ (sampling applied or not), and on records
// built by hand to reach what the captures do not (every value kind, strings with every byte,
// invalid UTF-8, repeated elements, floats, IPv6 exporters, more layouts than the writer keeps).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/ie_ids.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/record_json.hpp"
#include "collector/record_json_writer.hpp"
#include "collector/sflow.hpp"

namespace fc = flowd::collector;
using flowd::IpAddress;

namespace {

std::vector<std::string> captures() {
  std::vector<std::string> out;
  for (const std::string& dir : {std::string(FLOWD_FIXTURES) + "/netflow",
                                 std::string(FLOWD_SOURCE_DIR) + "/tests/fixtures/sflow"})
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.path().extension() == ".pcap") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Appends after what is already in the buffer, as the collector does for a batch.
void expect_same(fc::RecordJsonWriter& w, const fc::FlowRecord& rec, const std::string& where) {
  std::string out = "prefix;";
  w.append(out, rec);
  EXPECT_EQ(out.substr(7), fc::to_json(rec).dump()) << where;
}

TEST(RecordJsonWriter, EveryFixtureRecordAsTheDom) {
  const auto files = captures();
  ASSERT_GE(files.size(), 12u);
  fc::RecordJsonWriter w;  // one for all: layouts of many templates come and go
  std::size_t records = 0, sflow = 0;
  for (bool sampling : {false, true}) {
    for (const auto& path : files) {
      fc::DecoderLimits udp_limits;
      udp_limits.apply_sampling = sampling;
      fc::DecoderLimits tcp_limits = udp_limits;
      tcp_limits.udp = false;
      fc::Decoder udp(udp_limits), tcp(tcp_limits);
      fc::SflowLimits sflow_limits;
      sflow_limits.apply_sampling = sampling;
      fc::SflowDecoder sf(sflow_limits);
      std::size_t skipped = 0;
      fc::RecordBatch out;
      fc::read_capture(
          path,
          [&](const fc::CapturedPayload& p) {
            out.clear();
            if (!p.tcp && fc::looks_like_sflow(p.bytes))
              sf.decode(p.bytes, p.exporter, p.time, out);
            else
              (p.tcp ? tcp : udp).decode(p.bytes, p.exporter, p.time, out);
            for (const auto& rec : out) {
              expect_same(w, rec, path);
              ++records;
              sflow += rec.protocol == fc::ExportProtocol::kSflow;
            }
          },
          skipped);
    }
  }
  EXPECT_GT(records, 1000u);
  EXPECT_GT(sflow, 100u);
}

fc::Field field(std::uint16_t id, fc::FieldValue v, std::uint32_t pen = 0) {
  fc::Field f;
  f.pen = pen;
  f.id = id;
  f.value = std::move(v);
  return f;
}

fc::FieldValue unsigned_value(std::uint64_t u) {
  fc::FieldValue v;
  v.kind = fc::ValueKind::kUnsigned;
  v.u = u;
  return v;
}

fc::FieldValue bytes_value(fc::ValueKind kind, std::string bytes) {
  fc::FieldValue v;
  v.kind = kind;
  v.bytes = std::move(bytes);
  return v;
}

TEST(RecordJsonWriter, EveryValueKindAsTheDom) {
  fc::FlowRecord r;
  r.exporter = {*IpAddress::parse("2001:db8::7"), 4739};
  r.received = flowd::TimePoint(std::chrono::nanoseconds(1'700'000'000'123'456'789));
  r.version = 10;
  r.domain = 4294967295u;
  r.template_id = 65535;
  r.options = true;
  fc::FieldValue s;
  s.kind = fc::ValueKind::kSigned;
  s.i = std::numeric_limits<std::int64_t>::min();
  fc::FieldValue b;
  b.kind = fc::ValueKind::kBool;
  b.u = 1;
  fc::FieldValue v4;
  v4.kind = fc::ValueKind::kIpv4;
  v4.ip = *IpAddress::parse("192.0.2.1");
  fc::FieldValue v6;
  v6.kind = fc::ValueKind::kIpv6;
  v6.ip = *IpAddress::parse("2001:db8::1:0:0:1");
  fc::FieldValue unset;  // family 0: ""
  unset.kind = fc::ValueKind::kIpv6;
  fc::FieldValue t;
  t.kind = fc::ValueKind::kDateTime;
  for (auto p : {flowd::TimePrecision::kSeconds, flowd::TimePrecision::kMilliseconds,
                 flowd::TimePrecision::kMicroseconds, flowd::TimePrecision::kNanoseconds}) {
    t.precision = p;
    t.time = r.received;
    r.fields.push_back(field(fc::ie::kFlowStartMilliseconds, t));
  }
  r.fields.push_back(field(fc::ie::kOctetDeltaCount, unsigned_value(~0ull)));
  r.fields.push_back(field(200, s));
  r.fields.push_back(field(1, b, 12345));
  r.fields.push_back(field(fc::ie::kSourceIPv4Address, v4));
  r.fields.push_back(field(fc::ie::kSourceIPv6Address, v6));
  r.fields.push_back(field(fc::ie::kDestinationIPv6Address, unset));
  r.fields.push_back(field(56, bytes_value(fc::ValueKind::kMac, "\x00\x11\x22\xaa\xbb\xff")));
  r.fields.push_back(
      field(65000, bytes_value(fc::ValueKind::kOctets, std::string("\0\x7f\x80", 3))));
  r.fields.push_back(field(fc::ie::kOctetDeltaCount, unsigned_value(7), fc::kReversePen));
  r.fields.push_back(field(3, unsigned_value(1), fc::kInmonPen));
  for (double d : {0.0, -0.0, 3.0, 0.1, 1e20, 1.5e-7, -2.25, std::nan(""),
                   std::numeric_limits<double>::infinity()}) {
    fc::FieldValue f;
    f.kind = fc::ValueKind::kFloat;
    f.f = d;
    r.fields.push_back(field(320, f));
  }
  fc::RecordJsonWriter w;
  expect_same(w, r, "every kind");
  r.protocol = fc::ExportProtocol::kSflow;
  r.options = false;
  expect_same(w, r, "sflow");
}

TEST(RecordJsonWriter, StringsAsTheDom) {
  fc::RecordJsonWriter w;
  fc::FlowRecord r;
  r.exporter = {*IpAddress::parse("198.18.0.1"), 2055};
  r.version = 9;
  auto with = [&](std::string text) {
    r.fields = {field(82, bytes_value(fc::ValueKind::kString, std::move(text)))};
    return r;
  };
  std::string every;
  for (int c = 0; c < 256; ++c) every.push_back(static_cast<char>(c));
  expect_same(w, with(every), "every byte");
  for (const char* s : {"plain eth0", "quote \" back \\ slash / tab\t nl\n cr\r ff\f bs\b del\x7f",
                        "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\xc0\xaf overlong",
                        "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 past max", "\xe2\x82 cut",
                        "cut at end \xf0\x9f\x98", "\x80\xbf lone continuation", "\xff\xfe", ""})
    expect_same(w, with(s), s);
}

// Addresses are formatted without inet_ntop: the same text as glibc's on addresses with every
// pattern of zero groups (runs, ties, IPv4-mapped and -compatible forms).
TEST(RecordJsonWriter, AddressesAsInetNtop) {
  fc::RecordJsonWriter w;
  fc::FlowRecord r;
  r.exporter = {*IpAddress::parse("::ffff:198.18.0.1"), 9995};
  std::uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  for (unsigned zeros = 0; zeros < 256; ++zeros) {  // each group zero or not, by the bits
    for (int k = 0; k < 4; ++k) {
      fc::FieldValue v;
      v.kind = fc::ValueKind::kIpv6;
      v.ip.family = AF_INET6;
      for (std::size_t g = 0; g < 8; ++g) {
        const std::uint32_t x = next() >> (8 * (k % 3));  // sometimes small groups
        const std::uint16_t word = zeros >> g & 1 ? 0 : static_cast<std::uint16_t>(x | 1);
        v.ip.bytes[2 * g] = static_cast<std::uint8_t>(word >> 8);
        v.ip.bytes[2 * g + 1] = static_cast<std::uint8_t>(word);
      }
      if (k == 3 && (zeros & 0x3f) == 0x3f) {  // first six groups zero: mapped / compatible
        v.ip.bytes[10] = v.ip.bytes[11] = (zeros & 0x40) ? 0xff : 0;
      }
      r.fields.push_back(field(fc::ie::kSourceIPv6Address, v));
    }
  }
  for (const char* a : {"::", "::1", "::2", "::ffff:0.0.0.0", "::ffff:1.2.3.4", "::1.2.3.4",
                        "1::", "1:0:0:1::", "0:0:1::", "::ffff:0:1.2.3.4", "64:ff9b::1.2.3.4"}) {
    fc::FieldValue v;
    v.kind = fc::ValueKind::kIpv6;
    v.ip = *IpAddress::parse(a);
    r.fields.push_back(field(fc::ie::kDestinationIPv6Address, v));
  }
  for (const char* a : {"0.0.0.0", "255.255.255.255", "10.0.100.9", "1.20.3.40"}) {
    fc::FieldValue v;
    v.kind = fc::ValueKind::kIpv4;
    v.ip = *IpAddress::parse(a);
    r.fields.push_back(field(fc::ie::kSourceIPv4Address, v));
  }
  expect_same(w, r, "addresses");
}

TEST(RecordJsonWriter, RepeatedElementsAndManyLayoutsAsTheDom) {
  fc::RecordJsonWriter w;
  std::vector<fc::FlowRecord> records;
  // More layouts than the writer keeps, visited round robin twice: evictions and rebuilds.
  for (std::uint16_t n = 1; n <= 20; ++n) {
    fc::FlowRecord r;
    r.exporter = {*IpAddress::parse(n % 2 ? "192.0.2.9" : "2001:db8::9"), n};
    r.version = 10;
    r.template_id = static_cast<std::uint16_t>(255 + n);
    for (std::uint16_t k = 0; k < n; ++k) {
      // ids repeat (a repeated element), and names sort apart from ids.
      r.fields.push_back(field(static_cast<std::uint16_t>(1 + (k * 7) % 11), unsigned_value(k)));
    }
    records.push_back(std::move(r));
  }
  for (int round = 0; round < 2; ++round)
    for (const auto& r : records) expect_same(w, r, "layout " + std::to_string(r.fields.size()));
  fc::FlowRecord empty;
  expect_same(w, empty, "no fields");
}

}  // namespace
