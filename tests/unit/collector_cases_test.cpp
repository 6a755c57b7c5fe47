// SPDX-License-Identifier: Apache-2.0
// The conditions of public bug reports of other collectors (fixtures/cases/<case>/expected.md),
// each decoded as `flowd decode` and the netflow plugin decode it: the right value is the
// assertion.
#include <gtest/gtest.h>
#include <cstdlib>
#include <limits>

#include <map>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/decoder_state.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/record_json.hpp"
#include "collector/relative_time.hpp"

namespace fc = flowd::collector;
using flowd::TimePoint;

namespace {

const std::string kCases = std::string(FLOWD_FIXTURES) + "/cases/";

struct Decoded {
  std::vector<nlohmann::json> records;  // to_json of every record, in order
  std::map<std::string, std::size_t> errors;
};

// Decodes a capture as `flowd decode` does: one decoder for UDP payloads, one (withdrawals
// honoured, nothing held) for TCP streams split into IPFIX messages.
Decoded decode_capture(const std::string& path) {
  fc::DecoderLimits udp_limits;
  fc::Decoder udp(udp_limits);
  fc::DecoderLimits tcp_limits;
  tcp_limits.udp = false;
  fc::Decoder tcp(tcp_limits);
  Decoded d;
  std::size_t skipped = 0;
  fc::read_capture(
      path,
      [&](const fc::CapturedPayload& p) {
        fc::RecordBatch out;
        auto r = (p.tcp ? tcp : udp).decode(p.bytes, p.exporter, p.time, out);
        for (auto e : r.errors) ++d.errors[std::string(fc::to_string(e))];
        for (const auto& rec : out)
          if (!rec.options) d.records.push_back(fc::to_json(rec));
      },
      skipped);
  return d;
}

std::string field(const nlohmann::json& rec, const char* name) {
  const auto& f = rec.at("fields");
  if (!f.contains(name)) return "<missing " + std::string(name) + ">";
  return f.at(name).is_string() ? f.at(name).get<std::string>() : f.at(name).dump();
}

// ---- ipfix-tcp-define-then-withdraw -------------------------------------------------------------

struct WithdrawVariant {
  const char* file;
  std::size_t records;
};

class DefineThenWithdraw : public ::testing::TestWithParam<WithdrawVariant> {};

TEST_P(DefineThenWithdraw, RecordsFollowTheWireOrder) {
  const auto& v = GetParam();
  Decoded d = decode_capture(kCases + "ipfix-tcp-define-then-withdraw/" + v.file);
  EXPECT_EQ(d.records.size(), v.records) << v.file;
  // What was not decoded was dropped with a reason, never held for later.
  EXPECT_EQ(d.errors.count("pending_overflow"), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Variants, DefineThenWithdraw,
    ::testing::Values(WithdrawVariant{"input.pcap", 1},
                      WithdrawVariant{"variant-v1-separate-messages.pcap", 0},
                      WithdrawVariant{"variant-v2-separate-sets-same-msg.pcap", 0},
                      WithdrawVariant{"variant-v3-same-set.pcap", 0},
                      WithdrawVariant{"variant-v4-withdraw-then-define-same-set.pcap", 1},
                      WithdrawVariant{"variant-v5-withdraw-all-same-set.pcap", 0},
                      WithdrawVariant{"variant-v6-held-then-redefined.pcap", 1},
                      WithdrawVariant{"variant-v7-withdraw-define-then-next-msg.pcap", 2},
                      WithdrawVariant{"variant-v8-define-withdraw-then-next-msg.pcap", 0}),
    [](const auto& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

TEST(DefineThenWithdraw, OnlyTheRedefinedRecordWithItsOwnLayout) {
  // input.pcap: m1's data set follows the withdrawal of its template; m2 redefines 256 with the
  // addresses swapped and a packet count: only m2's record, read with m2's template.
  Decoded d = decode_capture(kCases + "ipfix-tcp-define-then-withdraw/input.pcap");
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(field(d.records[0], "destinationIPv4Address"), "192.0.2.2");
  EXPECT_EQ(field(d.records[0], "sourceIPv4Address"), "192.0.2.1");
  EXPECT_EQ(field(d.records[0], "octetDeltaCount"), "77");
  EXPECT_EQ(d.records[0].at("fields").count("packetDeltaCount"), 0u);
  EXPECT_EQ(d.errors["withdrawn_template"], 1u);
}

TEST(DefineThenWithdraw, HeldDataNeverMeetsALaterGeneration) {
  // v6: T | W | D | [T' = addresses swapped, 1/8][D']: D has no template when it arrives and must
  // not be decoded with T' (it would come out as 192.0.2.2 -> 192.0.2.1 with an octet count of 5).
  Decoded d =
      decode_capture(kCases + "ipfix-tcp-define-then-withdraw/variant-v6-held-then-redefined.pcap");
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(field(d.records[0], "octetDeltaCount"), "77");
  EXPECT_EQ(d.errors["withdrawn_template"], 1u);
}

TEST(DefineThenWithdraw, TcpDataWithoutATemplateIsDroppedNotHeld) {
  // A data set first in a TCP stream: RFC 7011 §8 has the template sent before it, so there is no
  // later definition it could be meant for.
  std::vector<std::uint8_t> m = {0,   10, 0, 36, 0x6b, 0x02, 0xf8, 0x59, 0,   0, 0, 0,
                                 0,   0,  0, 15, 1,    0,    0,    20,   192, 0, 2, 1,
                                 192, 0,  2, 2,  0,    0,    0,    0,    0,   0, 0, 5};
  fc::DecoderLimits tcp;
  tcp.udp = false;
  fc::Decoder dec(tcp);
  fc::Exporter from;
  from.address = *flowd::IpAddress::parse("192.0.2.10");
  fc::RecordBatch out;
  auto r = dec.decode(m, from, TimePoint{std::chrono::seconds{1795356761}}, out);
  EXPECT_EQ(r.records, 0u);
  EXPECT_EQ(r.pending, 0u);
  EXPECT_EQ(dec.pending_count(), 0u);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], fc::DecodeError::kNoTemplate);
}

// The same orderings over UDP, where RFC 7011 §8 forbids withdrawals: they are ignored (and
// counted), and data before its template is held for the first definition that follows it in wire
// order.
TEST(DefineThenWithdraw, UdpIgnoresWithdrawalsAndHoldsOnlyForTheNextDefinition) {
  auto msg = [](std::vector<std::uint8_t> sets) {
    static constexpr std::uint8_t kHeader[16] = {0, 10, 0, 0, 0x6b, 0x02, 0xf8, 0x59,
                                                 0, 0,  0, 0, 0,    0,    0,    15};
    std::vector<std::uint8_t> m(sizeof kHeader + sets.size());
    std::copy(std::begin(kHeader), std::end(kHeader), m.begin());
    std::copy(sets.begin(), sets.end(), m.begin() + sizeof kHeader);
    m[2] = static_cast<std::uint8_t>(m.size() >> 8);
    m[3] = static_cast<std::uint8_t>(m.size());
    return m;
  };
  // T = 8/4, 12/4, 2/8 ; T' = 12/4, 8/4, 1/8 ; W = withdraw 256
  const std::vector<std::uint8_t> t = {0, 2, 0, 20, 1, 0, 0, 3, 0, 8,
                                       0, 4, 0, 12, 0, 4, 0, 2, 0, 8};
  const std::vector<std::uint8_t> t2 = {0, 2, 0, 20, 1, 0, 0, 3, 0, 12,
                                        0, 4, 0, 8,  0, 4, 0, 1, 0, 8};
  const std::vector<std::uint8_t> w = {0, 2, 0, 8, 1, 0, 0, 0};
  const std::vector<std::uint8_t> data = {1, 0, 0, 20, 192, 0, 2, 1, 192, 0,
                                          2, 2, 0, 0,  0,   0, 0, 0, 0,   5};
  fc::Exporter from;
  from.address = *flowd::IpAddress::parse("192.0.2.10");
  from.port = 50002;
  const TimePoint now = TimePoint{std::chrono::seconds{1795356761}};
  fc::Decoder udp;
  fc::RecordBatch out;
  auto cat = [](std::initializer_list<std::vector<std::uint8_t>> parts) {
    std::vector<std::uint8_t> v;
    for (const auto& p : parts) v.insert(v.end(), p.begin(), p.end());
    return v;
  };
  // [T W][D]: the withdrawal is ignored, D decodes with T.
  auto r = udp.decode(msg(cat({t, w, data})), from, now, out);
  EXPECT_EQ(r.records, 1u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(fc::to_json(out[0])["fields"]["packetDeltaCount"], 5);
  // [D][T'][T]: D (held) meets T', the first definition after it, not T.
  fc::Decoder udp2;
  out.clear();
  r = udp2.decode(msg(cat({data, t2, t})), from, now, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(fc::to_json(out[0])["fields"]["sourceIPv4Address"], "192.0.2.2");
  EXPECT_EQ(fc::to_json(out[0])["fields"]["octetDeltaCount"], 5);
}

// ---- v9-ipfix-uptime-times ----------------------------------------------------------------------

TEST(UptimeTimes, SignedDifferencesFromTheHeaderUptime) {
  Decoded d = decode_capture(kCases + "v9-ipfix-uptime-times/input.pcap");
  ASSERT_EQ(d.records.size(), 5u);
  struct Want {
    const char *src, *start, *end;
  };
  const Want want[] = {
      {"192.0.2.1", "2026-11-22T14:12:33.904+00:00", "2026-11-22T14:12:39.000+00:00"},  // rollover
      {"192.0.2.3", "2026-11-22T14:12:40.900+00:00",
       "2026-11-22T14:12:41.160+00:00"},  // LAST after uptime
      {"192.0.2.5", "2026-11-22T14:12:40.000+00:00",
       "2026-11-22T14:12:40.500+00:00"},  // 8-byte 22/21
      {"192.0.2.7", "2026-11-22T14:12:39.515+00:00",
       "2026-11-22T14:12:40.765+00:00"},  // IPFIX + 160
      {"192.0.2.9", "2026-11-22T14:12:40.900+00:00", "2026-11-22T14:12:41.160+00:00"},  // v5
  };
  for (std::size_t i = 0; i < 5; ++i) {
    SCOPED_TRACE(d.records[i].dump());
    EXPECT_EQ(field(d.records[i], "sourceIPv4Address"), want[i].src);
    EXPECT_EQ(field(d.records[i], "flowStartMilliseconds"), want[i].start);
    EXPECT_EQ(field(d.records[i], "flowEndMilliseconds"), want[i].end);
  }
  // The raw relative values stay as exported.
  EXPECT_EQ(field(d.records[0], "flowStartSysUpTime"), std::to_string(0xFFFFF000u));
  EXPECT_EQ(field(d.records[3], "flowStartSysUpTime"), "59515");
}

TEST(UptimeTimes, OneFunctionForEveryRelativeElement) {
  constexpr std::int64_t kExport = 1795356761000;                                // 14:12:41.000Z
  EXPECT_EQ(fc::uptime_to_unix_ms(kExport, 3000, 3160), kExport + 160);          // after the header
  EXPECT_EQ(fc::uptime_to_unix_ms(kExport, 3000, 0xFFFFF000u), kExport - 7096);  // wrapped uptime
  EXPECT_EQ(fc::uptime_to_unix_ms(kExport, 0xFFFFFF00u, 0xFFFFFE00u), kExport - 256);
  EXPECT_EQ(fc::uptime_to_unix_ms(kExport, 0x10, 0xFFFFFFF0u), kExport - 0x20);  // across the wrap
  EXPECT_EQ(fc::uptime_to_unix_ms(kExport, 3000, 0x1'0000'0BB8ull),
            kExport);  // 8-byte: low 32 bits
  // IPFIX: uptime at export from systemInitTimeMilliseconds gives init + X without a wrap.
  const std::int64_t init = 1795356700000;
  EXPECT_EQ(fc::uptime_to_unix_ms(kExport, fc::uptime_at_export(kExport, init), 59515),
            init + 59515);
  // A forged systemInitTimeMilliseconds (any 64-bit value; the fuzzer found 0x8000_0000_…) only
  // changes the low 32 bits of the uptime: no signed overflow, the answer stays within ±24.8 days.
  for (const std::int64_t forged : {std::numeric_limits<std::int64_t>::min(),
                                    std::numeric_limits<std::int64_t>::max(), std::int64_t{-1}}) {
    const std::int64_t t = fc::uptime_to_unix_ms(kExport, fc::uptime_at_export(kExport, forged), 0);
    EXPECT_LE(std::llabs(t - kExport), std::int64_t{1} << 31) << forged;
  }
  // flowStart/EndDeltaMicroseconds: before the export time.
  EXPECT_EQ(fc::from_delta_microseconds(1795356761, 1'500'001).time_since_epoch(),
            std::chrono::microseconds{kExport * 1000 - 1'500'001});
}

TEST(UptimeTimes, DeltaMicrosecondsBecomeAbsoluteMicroseconds) {
  // IPFIX template 8/4, 12/4, 158/4, 159/4: start 1.5 s and end 250 µs before the export time.
  std::vector<std::uint8_t> m = {
      0, 10, 0, 0,  0x6b, 0x02, 0xf8, 0x59, 0,   0,  0, 0, 0, 0,    0,    3,    0, 2,   0, 24,
      1, 2,  0, 4,  0,    8,    0,    4,    0,   12, 0, 4, 0, 158,  0,    4,    0, 159, 0, 4,
      1, 2,  0, 20, 192,  0,    2,    1,    192, 0,  2, 2, 0, 0x16, 0xe3, 0x60, 0, 0,   0, 250};
  m[3] = static_cast<std::uint8_t>(m.size());
  fc::Exporter from;
  from.address = *flowd::IpAddress::parse("192.0.2.10");
  fc::Decoder dec;
  fc::RecordBatch out;
  dec.decode(m, from, TimePoint{std::chrono::seconds{1795356761}}, out);
  ASSERT_EQ(out.size(), 1u);
  auto j = fc::to_json(out[0]);
  EXPECT_EQ(j["fields"]["flowStartMicroseconds"], "2026-11-22T14:12:39.500000+00:00");
  EXPECT_EQ(j["fields"]["flowEndMicroseconds"], "2026-11-22T14:12:40.999750+00:00");
}

// ---- ipfix-ts-nanoseconds -----------------------------------------------------------------------

TEST(TimePrecision, NanosecondsKeepNineDigits) {
  Decoded d = decode_capture(kCases + "ipfix-ts-nanoseconds/input.pcap");
  ASSERT_EQ(d.records.size(), 2u);
  EXPECT_EQ(field(d.records[0], "flowStartNanoseconds"), "2026-11-22T14:12:39.015625000+00:00");
  EXPECT_EQ(field(d.records[0], "flowEndNanoseconds"), "2026-11-22T14:12:40.500000000+00:00");
  EXPECT_EQ(field(d.records[0], "packetDeltaCount"), "9");
  EXPECT_EQ(field(d.records[1], "flowStartNanoseconds"), "2026-11-22T14:12:40.123456789+00:00");
  EXPECT_EQ(field(d.records[1], "flowEndNanoseconds"), "2026-11-22T14:12:40.123456789+00:00");
  EXPECT_EQ(field(d.records[1], "sourceIPv4Address"), "192.0.2.3");
}

TEST(TimePrecision, EachEncodingPrintsItsOwnDigits) {
  using flowd::TimePrecision;
  const TimePoint t = TimePoint{std::chrono::nanoseconds{1795356759123456789}};
  EXPECT_EQ(flowd::format_time(t, TimePrecision::kSeconds), "2026-11-22T14:12:39+00:00");
  EXPECT_EQ(flowd::format_time(t, TimePrecision::kMilliseconds), "2026-11-22T14:12:39.123+00:00");
  EXPECT_EQ(flowd::format_time(t, TimePrecision::kMicroseconds),
            "2026-11-22T14:12:39.123456+00:00");
  EXPECT_EQ(flowd::format_time(t, TimePrecision::kNanoseconds),
            "2026-11-22T14:12:39.123456789+00:00");
  // Before 1970: the fraction still counts forward from the second.
  EXPECT_EQ(
      flowd::format_time(TimePoint{std::chrono::milliseconds{-1}}, TimePrecision::kMilliseconds),
      "1969-12-31T23:59:59.999+00:00");
}

TEST(TimePrecision, MicrosecondEncodingRoundsToTheNearestMicrosecond) {
  // dateTimeMicroseconds: NTP with the low 11 fraction bits ignored (RFC 7011 §6.1.9); a fraction
  // of 0x20000000 is exactly .125 s, and 0x1FFFF800 (just below) is .124999999... -> .125000 after
  // rounding.
  fc::FieldValue v;
  const std::uint8_t exact[8] = {0xee, 0xad, 0x76, 0xd7, 0x20, 0x00, 0x00, 0x00};
  fc::decode_value(fc::IeType::kDateTimeMicroseconds, exact, 8, v);
  EXPECT_EQ(fc::to_json(v), "2026-11-22T14:12:39.125000+00:00");
  const std::uint8_t below[8] = {0xee, 0xad, 0x76, 0xd7, 0x1f, 0xff, 0xf8, 0x00};
  fc::decode_value(fc::IeType::kDateTimeMicroseconds, below, 8, v);
  EXPECT_EQ(fc::to_json(v), "2026-11-22T14:12:39.125000+00:00");
  // Milliseconds print three digits, seconds none.
  const std::uint8_t ms[8] = {0, 0, 0x01, 0xa2, 0x03, 0x99, 0x2d, 0x60};
  fc::decode_value(fc::IeType::kDateTimeMilliseconds, ms, 8, v);
  EXPECT_EQ(fc::to_json(v), "2026-11-22T14:11:40.000+00:00");
  const std::uint8_t s[4] = {0x6b, 0x02, 0xf8, 0x59};
  fc::decode_value(fc::IeType::kDateTimeSeconds, s, 4, v);
  EXPECT_EQ(fc::to_json(v), "2026-11-22T14:12:41+00:00");
}

}  // namespace
