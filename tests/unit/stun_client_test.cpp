// SPDX-License-Identifier: Apache-2.0
// STUN Binding messages (RFC 5389) and public-IP mapping; the live exchange with coturn is in
// tests/integration/stun_test.cpp.
#include "backends/udp_firefly/stun_client.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <vector>

#include "backends/udp_firefly/ip_discovery.hpp"

#include <spdlog/spdlog.h>

namespace flowd::udp_firefly {
namespace {

// RFC 5769 §2.2 "Sample IPv4 Response" (SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853,
// MESSAGE-INTEGRITY, FINGERPRINT).
const std::vector<std::uint8_t> kRfc5769Ipv4 = {
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96};
const StunTransactionId kRfc5769Id = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                      0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

TEST(Stun, BindingRequestLayout) {
  auto m = stun_binding_request(kRfc5769Id);
  EXPECT_EQ(m[0], 0x00);
  EXPECT_EQ(m[1], 0x01);  // Binding request
  EXPECT_EQ(m[2], 0x00);
  EXPECT_EQ(m[3], 0x00);  // no attributes
  EXPECT_EQ(std::vector<std::uint8_t>(m.begin() + 4, m.begin() + 8),
            (std::vector<std::uint8_t>{0x21, 0x12, 0xa4, 0x42}));
  EXPECT_TRUE(std::equal(kRfc5769Id.begin(), kRfc5769Id.end(), m.begin() + 8));
}

TEST(Stun, Rfc5769SampleResponse) {
  auto a = parse_stun_response(kRfc5769Ipv4, kRfc5769Id);
  ASSERT_TRUE(a.address) << a.error;
  EXPECT_EQ(a.address->to_string(), "192.0.2.1");
  EXPECT_EQ(a.port, 32853);
  EXPECT_TRUE(a.xor_mapped);
}

TEST(Stun, FallsBackToMappedAddress) {
  // An RFC 3489-style answer: MAPPED-ADDRESS 198.51.100.9:4000 only.
  std::vector<std::uint8_t> m(kRfc5769Ipv4.begin(), kRfc5769Ipv4.begin() + 20);
  m[3] = 12;
  for (std::uint8_t b : {0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x0f, 0xa0, 198, 51, 100, 9})
    m.push_back(b);
  auto a = parse_stun_response(m, kRfc5769Id);
  ASSERT_TRUE(a.address) << a.error;
  EXPECT_EQ(a.address->to_string(), "198.51.100.9");
  EXPECT_EQ(a.port, 4000);
  EXPECT_FALSE(a.xor_mapped);
}

TEST(Stun, RejectsWhatIsNotOurAnswer) {
  auto other = kRfc5769Id;
  other[11] ^= 1;
  EXPECT_FALSE(parse_stun_response(kRfc5769Ipv4, other).address);
  auto cut = kRfc5769Ipv4;
  cut.resize(50);
  EXPECT_FALSE(parse_stun_response(cut, kRfc5769Id).address);
  auto bad_len = kRfc5769Ipv4;
  bad_len[3] = 0x40;  // claims more than there is
  EXPECT_FALSE(parse_stun_response(bad_len, kRfc5769Id).address);
  auto error = kRfc5769Ipv4;
  error[1] = 0x11;  // Binding error response
  auto e = parse_stun_response(error, kRfc5769Id);
  EXPECT_FALSE(e.address);
  EXPECT_NE(e.error.find("error"), std::string::npos);
  EXPECT_FALSE(parse_stun_response(std::vector<std::uint8_t>(19, 0), kRfc5769Id).address);
}

TEST(IpDiscovery, PrivateRangesAndMapping) {
  for (const char* p : {"10.1.2.3", "172.31.0.1", "192.168.1.1", "100.64.0.1", "198.19.2.1",
                        "127.0.0.1", "fd00::1", "fe80::1", "::1"})
    EXPECT_TRUE(is_private(*IpAddress::parse(p))) << p;
  for (const char* p : {"192.0.2.1", "172.32.0.1", "8.8.8.8", "2001:db8::1"})
    EXPECT_FALSE(is_private(*IpAddress::parse(p))) << p;
  AddressMapping m;
  m.internal4 = IpAddress::parse("10.0.0.5");
  m.public4 = IpAddress::parse("192.0.2.5");
  EXPECT_EQ(m.public_for(*IpAddress::parse("10.0.0.5")), IpAddress::parse("192.0.2.5"));
  EXPECT_FALSE(m.public_for(*IpAddress::parse("10.0.0.6")));
  EXPECT_FALSE(m.public_for(*IpAddress::parse("fd00::5")));  // no IPv6 mapping
}

TEST(IpDiscovery, LocalAddressTowardsLoopback) {
  EXPECT_EQ(local_address_towards("127.0.0.1"), IpAddress::parse("127.0.0.1"));
  EXPECT_FALSE(local_address_towards("not an address"));
}

}  // namespace
}  // namespace flowd::udp_firefly

namespace flowd::udp_firefly {
namespace {

TEST(IpDiscovery, StaticMappingNeedsNoStun) {
  IpDiscoveryOptions o;
  o.public_ip4 = "192.0.2.7";
  o.probe4 = "127.0.0.1";  // so the internal address is known on any host
  o.probe6 = "::1";
  o.public_ip6 = "2001:db8::7";
  auto m = discover_addresses(o, *spdlog::default_logger());
  EXPECT_EQ(m.internal4, IpAddress::parse("127.0.0.1"));
  EXPECT_EQ(m.public_for(*IpAddress::parse("127.0.0.1")), IpAddress::parse("192.0.2.7"));
  if (m.internal6) {
    EXPECT_EQ(m.public_for(*m.internal6), IpAddress::parse("2001:db8::7"));
  }
}

}  // namespace
}  // namespace flowd::udp_firefly
