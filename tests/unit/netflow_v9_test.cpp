// SPDX-License-Identifier: Apache-2.0
// NetFlow v9 decoder (netflow_v9.cpp): sequence numbers, template redefinition, vendor ids, options
// records announcing sampling.
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;

TEST(NetflowDecoder, V9Sequence) {
  // v9: +1 per packet; the two-datagram softflowd capture has no loss.
  EXPECT_EQ(decode_case("softflowd-v9").sequence_lost, 0u);
}

TEST(NetflowDecoder, V9RedefinitionReplacesAndVendorIds) {
  // v9 header + template flowset + data flowset, crafted.
  auto v9 = [](std::vector<std::uint8_t> sets) {
    Writer w;
    w.u16(9).u16(1).u32(3178).u32(1795356761).u32(1).u32(0);
    w.b.insert(w.b.end(), sets.begin(), sets.end());
    return w.b;
  };
  fc::Decoder dec;
  fc::RecordBatch out;
  // Template 256: 8/4, 40000/2 (vendor id, not PEN).
  Writer t1;
  t1.u16(0).u16(16).u16(256).u16(2).u16(8).u16(4).u16(40000).u16(2);
  Writer d1;
  d1.u16(256).u16(10).u32(0xC0000201).u16(0xBEEF);
  auto r = dec.decode(v9(t1.b), kExporter, kNow, out);
  EXPECT_EQ(r.templates, 1u);
  r = dec.decode(v9(d1.b), kExporter, kNow, out);
  ASSERT_EQ(r.records, 1u);
  EXPECT_EQ(fc::to_json(out[0])["fields"]["id40000"], "beef");
  // Redefinition: 256 = 12/4 only.
  Writer t2;
  t2.u16(0).u16(12).u16(256).u16(1).u16(12).u16(4);
  Writer d2;
  d2.u16(256).u16(8).u32(0xC0000202);
  dec.decode(v9(t2.b), kExporter, kNow, out);
  EXPECT_EQ(dec.template_count(), 1u);
  out.clear();
  r = dec.decode(v9(d2.b), kExporter, kNow, out);
  ASSERT_EQ(r.records, 1u);
  EXPECT_EQ(addr_of(out[0], 12, 28), "192.0.2.2");
  EXPECT_EQ(out[0].find(8), nullptr);
}

TEST(CollectorSampling, SoftflowdV9OptionsScaleLaterRecords) {
  // softflowd -s 2 announces samplingInterval 2 in an options record (scope: interface) before its
  // data; with apply_sampling every data record's packets and octets are doubled, otherwise
  // untouched.
  auto run = [](bool apply) {
    fc::DecoderLimits l;
    l.apply_sampling = apply;
    fc::Decoder dec(l);
    fc::RecordBatch out;
    for (auto& d : read_pcap_udp(kFixtures + "/netflow/softflowd-v9-sampling2.pcap"))
      dec.decode(d.payload, d.from, kNow, out);
    std::vector<std::pair<std::int64_t, std::int64_t>> counters;
    bool options_seen = false;
    for (const auto& r : out) {
      if (r.options) {
        options_seen = true;
        EXPECT_EQ(uint_of(r, 34), 2);
        continue;
      }
      if (options_seen) counters.emplace_back(uint_of(r, 2), uint_of(r, 1));
    }
    return counters;
  };
  auto raw = run(false), scaled = run(true);
  ASSERT_EQ(raw.size(), scaled.size());
  ASSERT_FALSE(raw.empty());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    EXPECT_EQ(scaled[i].first, raw[i].first * 2);
    EXPECT_EQ(scaled[i].second, raw[i].second * 2);
  }
}

}  // namespace
