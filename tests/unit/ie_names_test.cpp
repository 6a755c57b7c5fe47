// SPDX-License-Identifier: Apache-2.0
// IANA element names (ie_names.cpp), decode error names and exporter formatting.
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;

TEST(CollectorNames, IeNames) {
  EXPECT_EQ(fc::ie_name(0, 8), "sourceIPv4Address");
  EXPECT_EQ(fc::ie_name(0, 31), "flowLabelIPv6");
  EXPECT_EQ(fc::ie_name(0, 82), "interfaceName");
  EXPECT_EQ(fc::ie_name(0, 136), "flowEndReason");
  EXPECT_EQ(fc::ie_name(0, 239), "biflowDirection");
  EXPECT_EQ(fc::ie_name(0, 305), "samplingPacketInterval");
  EXPECT_EQ(fc::ie_name(29305, 2), "reversePacketDeltaCount");
  EXPECT_EQ(fc::ie_name(29305, 8), "reverseSourceIPv4Address");
  EXPECT_EQ(fc::ie_name(32473, 1), "e32473id1");
  EXPECT_EQ(fc::ie_name(0, 40000), "id40000");
  EXPECT_EQ(fc::ie_name(0, 65), "id65");
  EXPECT_EQ(fc::to_string(fc::DecodeError::kWithdrawalIgnored), "withdrawal_ignored");
  fc::Exporter v6{*IpAddress::parse("2001:db8::1"), 4739};
  EXPECT_EQ(v6.to_string(), "[2001:db8::1]:4739");
}

}  // namespace
