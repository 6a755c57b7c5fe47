// SPDX-License-Identifier: Apache-2.0
// NetFlow v1/v5 decoder (netflow_v5.cpp): sequence numbers and the header's sampling interval.
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;

TEST(NetflowDecoder, V5Sequence) {
  const auto v5 = read_bytes(kFixtures + "/malformed/v5-valid-2-records.bin");
  auto with_seq = [&](std::uint32_t s) {
    auto p = v5;
    p[16] = static_cast<std::uint8_t>(s >> 24);
    p[17] = static_cast<std::uint8_t>(s >> 16);
    p[18] = static_cast<std::uint8_t>(s >> 8);
    p[19] = static_cast<std::uint8_t>(s);
    return p;
  };
  fc::Decoder dec;
  fc::RecordBatch out;
  EXPECT_EQ(dec.decode(with_seq(100), kExporter, kNow, out).sequence_lost, 0u);
  EXPECT_EQ(dec.decode(with_seq(102), kExporter, kNow, out).sequence_lost, 0u);
  EXPECT_EQ(dec.decode(with_seq(110), kExporter, kNow, out).sequence_lost, 6u);
  EXPECT_EQ(dec.decode(with_seq(0), kExporter, kNow, out).sequence_lost, 0u);  // restart
}

TEST(CollectorSampling, V5HeaderInterval) {
  auto v5 = read_bytes(kFixtures + "/malformed/v5-valid-2-records.bin");
  fc::RecordBatch plain, scaled;
  fc::Decoder{}.decode(v5, kExporter, kNow, plain);
  v5[22] = 0x40;  // mode 1, interval 100
  v5[23] = 100;
  fc::DecoderLimits l;
  l.apply_sampling = true;
  fc::Decoder(l).decode(v5, kExporter, kNow, scaled);
  ASSERT_EQ(plain.size(), 2u);
  ASSERT_EQ(scaled.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(uint_of(scaled[i], 2), uint_of(plain[i], 2) * 100);
    EXPECT_EQ(uint_of(scaled[i], 1), uint_of(plain[i], 1) * 100);
    EXPECT_EQ(uint_of(scaled[i], 34), 100);
  }
}

}  // namespace
