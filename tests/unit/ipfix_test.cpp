// SPDX-License-Identifier: Apache-2.0
// IPFIX decoder (ipfix.cpp) on crafted messages: sequence numbers, reduced-size encoding and
// types, repeated elements, extreme times, sampling selectors.
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;

TEST(IpfixDecoder, SequenceGapIsLossRestartIsNot) {
  fc::Decoder dec;
  fc::RecordBatch out;
  dec.decode(ipfix(0, 1, {{2, tmpl300()}, {300, data300(3)}}), kExporter, kNow, out);
  EXPECT_EQ(dec.decode(ipfix(3, 1, {{300, data300(2)}}), kExporter, kNow, out).sequence_lost, 0u);
  EXPECT_EQ(dec.decode(ipfix(9, 1, {{300, data300(1)}}), kExporter, kNow, out).sequence_lost, 4u);
  EXPECT_EQ(dec.decode(ipfix(0, 1, {{300, data300(1)}}), kExporter, kNow, out).sequence_lost,
            0u);  // restart
  EXPECT_EQ(dec.decode(ipfix(1, 1, {{300, data300(1)}}), kExporter, kNow, out).sequence_lost, 0u);
}

TEST(IpfixDecoder, ReducedSizeAndTypes) {
  // Template 400: flowStartSeconds/4, octetDeltaCount/3 (reduced), mibObjectValueInteger/2 (signed,
  // reduced), samplingProbability/4 (float64 as float32), sourceMacAddress/6,
  // flowStartNanoseconds/8.
  Writer t;
  t.u16(400)
      .u16(6)
      .u16(150)
      .u16(4)
      .u16(1)
      .u16(3)
      .u16(434)
      .u16(2)
      .u16(311)
      .u16(4)
      .u16(56)
      .u16(6)
      .u16(156)
      .u16(8);
  Writer d;
  d.u32(1795356761).u8(1).u8(2).u8(3).u16(0xFFFE).u32(0x3F000000);
  d.u8(2).u8(0).u8(0).u8(0).u8(0).u8(1);
  d.u32(1795356761u + 2208988800u).u32(0x80000000u);
  fc::Decoder dec;
  fc::RecordBatch out;
  auto r = dec.decode(ipfix(0, 1, {{2, t.b}, {400, d.b}}), kExporter, kNow, out);
  ASSERT_EQ(r.records, 1u);
  const auto& rec = out[0];
  EXPECT_EQ(rec.find(150)->value.kind, fc::ValueKind::kDateTime);
  EXPECT_EQ(rec.find(150)->value.time, kNow);
  EXPECT_EQ(uint_of(rec, 1), 0x010203);
  EXPECT_EQ(rec.find(434)->value.kind, fc::ValueKind::kSigned);
  EXPECT_EQ(rec.find(434)->value.i, -2);
  EXPECT_EQ(rec.find(311)->value.kind, fc::ValueKind::kFloat);
  EXPECT_DOUBLE_EQ(rec.find(311)->value.f, 0.5);
  EXPECT_EQ(rec.find(156)->value.time, kNow + std::chrono::milliseconds{500});
  const auto j = fc::to_json(rec);
  EXPECT_EQ(j["fields"]["sourceMacAddress"], "02:00:00:00:00:01");
  EXPECT_EQ(j["fields"]["mibObjectValueInteger"], -2);
  EXPECT_EQ(j["version"], 10);
  EXPECT_EQ(j["template"], 400);
  EXPECT_EQ(j["exporter"], "192.0.2.1:2055");
  EXPECT_EQ(j["fields"]["flowStartSeconds"].get<std::string>().substr(0, 19),
            "2026-11-22T14:12:41");
}

TEST(IpfixDecoder, RepeatedElementBecomesArray) {
  Writer t;
  t.u16(401).u16(2).u16(8).u16(4).u16(8).u16(4);
  Writer d;
  d.u32(0xC0000201).u32(0xC0000202);
  fc::Decoder dec;
  fc::RecordBatch out;
  dec.decode(ipfix(0, 1, {{2, t.b}, {401, d.b}}), kExporter, kNow, out);
  ASSERT_EQ(out.size(), 1u);
  const auto j = fc::to_json(out[0]);
  EXPECT_EQ(j["fields"]["sourceIPv4Address"], nlohmann::json::array({"192.0.2.1", "192.0.2.2"}));
}

TEST(IpfixDecoder, ExtremeTimesAreClampedNotOverflowed) {
  // Template 401: flowStartSeconds/8, flowStartMilliseconds/8 with all-ones values (found by the
  // fuzzer: milliseconds * 10^6 overflowed a signed 64-bit nanosecond count).
  Writer t;
  t.u16(401).u16(2).u16(150).u16(8).u16(152).u16(8);
  Writer d;
  d.u32(0xFFFFFFFF).u32(0xFFFFFFFF).u32(0xFFFFFFFF).u32(0xFFFFFFFF);
  fc::Decoder dec;
  fc::RecordBatch out;
  auto r = dec.decode(ipfix(0, 41, {{2, t.b}, {401, d.b}}), kExporter, kNow, out);
  ASSERT_EQ(r.records, 1u);
  const auto* s = out[0].find(150);
  const auto* ms = out[0].find(152);
  ASSERT_TRUE(s && ms);
  EXPECT_EQ(s->value.kind, fc::ValueKind::kDateTime);
  EXPECT_GT(s->value.time, kNow);
  EXPECT_GT(ms->value.time, kNow);
}

TEST(CollectorSampling, IpfixSelectorsMatchedById) {
  // Options template 400: scope selectorId(302)/4, samplingPacketInterval(305)/4,
  // samplingPacketSpace(306)/4. Selector 7 takes 1 of 10 (1 + 9), selector 8 one of 100.
  auto opt_tmpl = Writer{}.u16(400).u16(3).u16(1).u16(302).u16(4).u16(305).u16(4).u16(306).u16(4).b;
  auto opt_data = Writer{}.u32(7).u32(1).u32(9).u32(8).u32(1).u32(99).b;
  // Data template 401: selectorId/4, packetDeltaCount/4, octetDeltaCount/8.
  auto tmpl = Writer{}.u16(401).u16(3).u16(302).u16(4).u16(2).u16(4).u16(1).u16(8).b;
  auto data = Writer{}
                  .u32(7)
                  .u32(3)
                  .u32(0)
                  .u32(300)
                  .u32(8)
                  .u32(2)
                  .u32(0)
                  .u32(200)
                  .u32(9)
                  .u32(5)
                  .u32(0)
                  .u32(50)
                  .b;
  fc::DecoderLimits l;
  l.apply_sampling = true;
  fc::Decoder dec(l);
  fc::RecordBatch out;
  auto r = dec.decode(ipfix(0, 1, {{3, opt_tmpl}, {400, opt_data}, {2, tmpl}, {401, data}}),
                      kExporter, kNow, out);
  EXPECT_TRUE(r.errors.empty());
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(uint_of(out[2], 2), 30);  // selector 7: 3 packets x 10
  EXPECT_EQ(uint_of(out[2], 1), 3000);
  EXPECT_EQ(uint_of(out[3], 2), 200);  // selector 8: x 100
  EXPECT_EQ(uint_of(out[4], 2), 5);    // selector 9 unknown: as exported
}

}  // namespace
