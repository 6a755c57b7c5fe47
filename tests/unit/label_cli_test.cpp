// SPDX-License-Identifier: Apache-2.0
// `flowd label`: the flow label and the combined scitag integer of transfer tools
// (experiment << 6 | activity; spec flowd.md: 144 = atlas / Production Output).
#include "app/label_cli.hpp"

#include <gtest/gtest.h>

#include "flowd/scitags_label.hpp"

namespace flowd {
namespace {

TEST(Scitag, ExperimentSixBitsUpActivityBelow) {
  EXPECT_EQ(make_scitag(2, 16), 144u);
  EXPECT_EQ(make_scitag(0, 0), 0u);
  EXPECT_EQ(make_scitag(511, 63), kScitagMax);
  EXPECT_EQ(kScitagMax, 32767u);
  auto t = decode_scitag(144);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->experiment, 2u);
  EXPECT_EQ(t->activity, 16u);
  EXPECT_FALSE(decode_scitag(kScitagMax + 1));
  // Every pair survives the round trip.
  for (unsigned e = 0; e < 512; e += 37)
    for (unsigned a = 0; a < 64; a += 7) {
      auto back = decode_scitag(make_scitag(e, a));
      ASSERT_TRUE(back);
      EXPECT_EQ(back->experiment, e);
      EXPECT_EQ(back->activity, a);
    }
}

TEST(LabelCli, ScitagDecodesToNamesAndTheFlowLabel) {
  auto r = run_label_command({"scitag", "144"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // The label of the same pair, as `flowd label encode 2 16` prints it.
  const std::uint32_t label = make_label(2, 16, 0);
  EXPECT_NE(r.out.find("scitag 144: experiment 2 (atlas), activity 16 ("), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("label " + std::to_string(label) + " "), std::string::npos) << r.out;
  // Hex as the tools' documentation sometimes writes it.
  EXPECT_EQ(run_label_command({"scitag", "0x90"}).out, r.out);
}

TEST(LabelCli, EncodeAndDecodeAlsoPrintTheScitag) {
  auto e = run_label_command({"encode", "atlas", "Debug"});
  ASSERT_EQ(e.code, 0) << e.err;
  const auto exp = 2u;
  auto d = run_label_command({"decode", "0x90125"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("experiment 2 (atlas)"), std::string::npos) << d.out;
  const auto tag = decode_label(0x90125);
  EXPECT_NE(
      d.out.find("; scitag " + std::to_string(make_scitag(tag.experiment, tag.activity)) + "\n"),
      std::string::npos)
      << d.out;
  EXPECT_NE(e.out.find("; scitag " + std::to_string(make_scitag(exp, tag.activity)) + "\n"),
            std::string::npos)
      << e.out;
  auto n = run_label_command({"encode", "2", "16"});
  EXPECT_NE(n.out.find("; scitag 144\n"), std::string::npos) << n.out;
}

TEST(LabelCli, ScitagOutOfRangeOrNotANumberIsAUsageError) {
  for (const char* bad : {"32768", "-1", "atlas", "", "12x", "0x8000"}) {
    auto r = run_label_command({"scitag", bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_EQ(r.out, "") << bad;
    EXPECT_NE(r.err.find("0..32767"), std::string::npos) << r.err;
  }
  EXPECT_EQ(run_label_command({"scitag", "32767"}).code, 0);
  EXPECT_EQ(run_label_command({"scitag"}).code, 2);
}

// `flowd label decode 0x100000` said only "a 20-bit flow label": it says the value is out of range
// (issue 15).
TEST(LabelCli, DecodeSaysALabelWiderThan20BitsIsOutOfRange) {
  auto r = run_label_command({"decode", "0x100000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("0x100000 is out of range: a flow label has 20 bits (0..1048575, "
                       "0x0..0xfffff)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(run_label_command({"decode", "0xfffff"}).code, 0);
  EXPECT_EQ(run_label_command({"decode", "x1"}).err.find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace flowd
