// SPDX-License-Identifier: Apache-2.0
// The sFlow v5 decoder on hand-built datagrams: the record it makes of a flow sample, the forms it
// accepts (expanded samples, sampled_ipv4/_ipv6/_ethernet), sampling, sequence numbers and agent
// state, and one test per malformed-input reason (SflowError) with the keep-what-came-before
// policy.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "collector/decoder.hpp"
#include "collector/record_json.hpp"
#include "collector/sflow.hpp"
#include "sflow_builder.hpp"

namespace fc = flowd::collector;
namespace sb = flowd::test::sflow;
using flowd::IpAddress;
using flowd::TimePoint;
using E = fc::SflowError;

namespace {

const TimePoint kNow{std::chrono::seconds{1795356761}};
const fc::Exporter kFrom{IpAddress::v4(0x7F000001), 6343};
constexpr std::uint32_t kPen = fc::kInmonPen;

std::int64_t u(const fc::FlowRecord& r, std::uint16_t id, std::uint32_t pen = 0) {
  const auto* f = r.find(id, pen);
  if (!f || f->value.kind != fc::ValueKind::kUnsigned) return -1;
  return static_cast<std::int64_t>(f->value.u);
}
std::int64_t su(const fc::FlowRecord& r, fc::SflowElement e) {
  return u(r, static_cast<std::uint16_t>(e), kPen);
}
std::string ip(const fc::FlowRecord& r, std::uint16_t id, std::uint32_t pen = 0) {
  const auto* f = r.find(id, pen);
  return f ? f->value.ip.to_string() : "-";
}

struct Decoded {
  fc::SflowResult result;
  fc::RecordBatch out;
};

Decoded decode(fc::SflowDecoder& d, const sb::Bytes& dgram, TimePoint now = kNow) {
  Decoded o;
  o.result = d.decode(dgram, kFrom, now, o.out);
  EXPECT_EQ(o.result.records, o.out.size());
  for (const auto& r : o.out) (void)fc::to_json(r).dump();
  return o;
}
Decoded decode(const sb::Bytes& dgram) {
  fc::SflowDecoder d;
  return decode(d, dgram);
}

// Only the reasons listed, each as often as listed.
void expect_errors(const fc::SflowResult& r,
                   std::initializer_list<std::pair<E, std::uint32_t>> want) {
  std::array<std::uint32_t, fc::kSflowErrorCount> expected{};
  for (auto [e, n] : want) expected[static_cast<std::size_t>(e)] = n;
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(r.errors[i], expected[i]) << fc::to_string(static_cast<E>(i));
}

sb::Bytes tcp_frame() {
  return sb::ethernet(0x86DD, sb::ipv6(6, sb::tcp(40002, 7001, 0x18), 0x12345, 0x20),
                      {0x81000000u | 42});
}
sb::Bytes sample(std::uint32_t seq) {
  return sb::flow_sample(seq, 100, seq * 100, 7, 9,
                         {sb::extended_switch(), sb::sampled_header(tcp_frame(), 1518)});
}

TEST(Sflow, FlowSampleBecomesOneRecord) {
  auto o = decode(sb::datagram(77, {sample(5)}, 0xC0000201, 3));
  expect_errors(o.result, {});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(o.result.extended_records, 1u);
  EXPECT_EQ(o.result.agent_sequence, 77u);
  const auto& r = o.out[0];
  EXPECT_EQ(r.protocol, fc::ExportProtocol::kSflow);
  EXPECT_EQ(r.version, 5);
  EXPECT_EQ(r.domain, 3u);
  EXPECT_EQ(r.exporter, kFrom);
  EXPECT_EQ(r.received, kNow);
  // Datagram and sample values.
  EXPECT_EQ(ip(r, 1, kPen), "192.0.2.1");
  EXPECT_EQ(su(r, fc::SflowElement::kSubAgentId), 3);
  EXPECT_EQ(su(r, fc::SflowElement::kDatagramSequenceNumber), 77);
  EXPECT_EQ(su(r, fc::SflowElement::kUptime), 123456);
  EXPECT_EQ(su(r, fc::SflowElement::kSampleSequenceNumber), 5);
  EXPECT_EQ(su(r, fc::SflowElement::kSourceIdType), 0);
  EXPECT_EQ(su(r, fc::SflowElement::kSourceIdIndex), 3);
  EXPECT_EQ(u(r, 34), 100);  // samplingInterval
  EXPECT_EQ(su(r, fc::SflowElement::kSamplePool), 500);
  EXPECT_EQ(su(r, fc::SflowElement::kDrops), 0);
  EXPECT_EQ(u(r, 10), 7);
  EXPECT_EQ(u(r, 14), 9);
  // One sampled packet, unscaled.
  EXPECT_EQ(u(r, 2), 1);
  EXPECT_EQ(u(r, 1), 1518);
  EXPECT_EQ(u(r, 312), 1518);
  EXPECT_EQ(su(r, fc::SflowElement::kHeaderProtocol), 1);
  EXPECT_EQ(su(r, fc::SflowElement::kStripped), 4);
  EXPECT_EQ(su(r, fc::SflowElement::kHeaderLength), static_cast<std::int64_t>(tcp_frame().size()));
  // From the header.
  EXPECT_EQ(u(r, 58), 42);
  EXPECT_EQ(u(r, 256), 0x86DD);
  EXPECT_EQ(ip(r, 27), "2001:db8::1");
  EXPECT_EQ(ip(r, 28), "2001:db8::2");
  EXPECT_EQ(u(r, 31), 0x12345);
  EXPECT_EQ(u(r, 5), 0x20);
  EXPECT_EQ(u(r, 224), 60);
  EXPECT_EQ(u(r, 4), 6);
  EXPECT_EQ(u(r, 7), 40002);
  EXPECT_EQ(u(r, 11), 7001);
  EXPECT_EQ(u(r, 6), 0x18);

  const auto j = fc::to_json(r);
  EXPECT_EQ(j["protocol"], "sflow");
  EXPECT_EQ(j["version"], 5);
  EXPECT_EQ(j["fields"]["sflowSamplePool"], 500);
  EXPECT_EQ(j["fields"]["sflowAgentAddress"], "192.0.2.1");
  EXPECT_EQ(j["fields"]["sourceMacAddress"], "02:00:00:00:00:01");
  EXPECT_EQ(j["fields"]["flowLabelIPv6"], 0x12345);
  for (const auto& [name, value] : j["fields"].items())
    EXPECT_NE(name.rfind("e4300", 0), 0u) << name;
}

TEST(Sflow, ElementNames) {
  EXPECT_EQ(fc::ie_name(kPen, 8), "sflowSamplePool");
  EXPECT_EQ(fc::ie_name(kPen, 1), "sflowAgentAddress");
  EXPECT_EQ(fc::ie_name(kPen, 16), "sflowHeaderLength");
  EXPECT_EQ(fc::ie_name(kPen, 17), "e4300id17");
  EXPECT_EQ(fc::ie_name(kPen, 0), "e4300id0");
  EXPECT_EQ(fc::ie_name(0, 312), "dataLinkFrameSize");
  EXPECT_EQ(fc::ie_name(0, 224), "ipTotalLength");
}

TEST(Sflow, NetflowRecordsInAReusedSlotAreNetflowAgain) {
  fc::RecordBatch out;
  fc::SflowDecoder s;
  s.decode(sb::datagram(1, {sample(1)}), kFrom, kNow, out);
  ASSERT_EQ(out.size(), 1u);
  out.clear();
  // A NetFlow v5 datagram with one record: the slot the sFlow record used is overwritten.
  sb::Bytes v5 = sb::words({0x00050001, 0, 1795356761, 0, 0, 0});
  v5.resize(24 + 48, 0);
  fc::Decoder n;
  n.decode(v5, kFrom, kNow, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].protocol, fc::ExportProtocol::kNetflow);
  EXPECT_FALSE(fc::to_json(out[0]).contains("protocol"));
}

TEST(Sflow, LooksLikeSflow) {
  EXPECT_TRUE(fc::looks_like_sflow(sb::datagram(1, {})));
  EXPECT_FALSE(fc::looks_like_sflow(sb::words({0x00050000})));  // NetFlow v5, count 0
  EXPECT_FALSE(fc::looks_like_sflow(sb::words({0x000A0010})));  // IPFIX
  EXPECT_FALSE(fc::looks_like_sflow(sb::Bytes{0, 0, 0}));
}

TEST(Sflow, ApplySamplingScalesPacketsAndOctets) {
  fc::SflowLimits l;
  l.apply_sampling = true;
  fc::SflowDecoder d(l);
  auto o = decode(d, sb::datagram(1, {sample(1)}));
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(u(o.out[0], 2), 100);
  EXPECT_EQ(u(o.out[0], 1), 151800);
  EXPECT_EQ(u(o.out[0], 312), 1518);  // the frame itself is not scaled
}

TEST(Sflow, ExpandedSampleAndInterfaceFormats) {
  // Expanded: a source index and an input ifIndex too big for the compact form's 24 and 30 bits;
  // output format 1 (discarded, reason 258).
  auto o = decode(
      sb::datagram(1, {sb::flow_sample_expanded(9, 2, 0x1000000, 10, 50, 0, 0x40000001, 1, 258,
                                                {sb::sampled_header(tcp_frame(), 90)})}));
  expect_errors(o.result, {});
  ASSERT_EQ(o.out.size(), 1u);
  const auto& r = o.out[0];
  EXPECT_EQ(su(r, fc::SflowElement::kSourceIdType), 2);
  EXPECT_EQ(su(r, fc::SflowElement::kSourceIdIndex), 0x1000000);
  EXPECT_EQ(u(r, 10), 0x40000001);
  EXPECT_EQ(u(r, 14), -1);  // no egressInterface: the packet was dropped
  EXPECT_EQ(su(r, fc::SflowElement::kOutputFormat), 1);
  EXPECT_EQ(su(r, fc::SflowElement::kOutputValue), 258);
  // Compact: source_id class in the top byte; output format 2 (multiple interfaces, 3 of them).
  o = decode(sb::datagram(1, {sb::flow_sample(1, 1, 1, 0x3FFFFFFF, 0x80000003, {}, 0x01000007)}));
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(su(o.out[0], fc::SflowElement::kSourceIdType), 1);
  EXPECT_EQ(su(o.out[0], fc::SflowElement::kSourceIdIndex), 7);
  EXPECT_EQ(u(o.out[0], 10), 0x3FFFFFFF);  // the agent itself, kept as exported
  EXPECT_EQ(su(o.out[0], fc::SflowElement::kOutputFormat), 2);
  EXPECT_EQ(su(o.out[0], fc::SflowElement::kOutputValue), 3);
  // A sample without any packet record still counts one packet; its size is unknown.
  EXPECT_EQ(u(o.out[0], 2), 1);
  EXPECT_EQ(u(o.out[0], 1), -1);
}

TEST(Sflow, SampledIpv4Ipv6AndEthernetRecords) {
  const auto v4 = sb::tagged(sb::data_format(0, 3),
                             sb::words({1500, 17, 0xC0000201, 0xC0000202, 5353, 53, 0, 0x10}));
  sb::Bytes v6body = sb::words({400, 6});
  for (int k = 1; k <= 2; ++k) {
    sb::Bytes a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                   0,    0,    0,    0,    0, 0, 0, static_cast<std::uint8_t>(k)};
    sb::append(v6body, a);
  }
  sb::append(v6body, sb::words({443, 50000, 0x11, 0xB8}));
  const auto v6 = sb::tagged(sb::data_format(0, 4), v6body);
  sb::Bytes eth = sb::words({1522});
  sb::append(eth,
             {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x02, 0, 0});
  sb::append(eth, sb::words({0x0800}));
  const auto ether = sb::tagged(sb::data_format(0, 2), eth);

  auto o = decode(sb::datagram(
      1, {sb::flow_sample(1, 8, 8, 1, 2, {ether, v4}), sb::flow_sample(2, 8, 16, 1, 2, {v6})}));
  expect_errors(o.result, {});
  ASSERT_EQ(o.out.size(), 2u);
  const auto& a = o.out[0];
  EXPECT_EQ(ip(a, 8), "192.0.2.1");
  EXPECT_EQ(ip(a, 12), "192.0.2.2");
  EXPECT_EQ(u(a, 4), 17);
  EXPECT_EQ(u(a, 7), 5353);
  EXPECT_EQ(u(a, 11), 53);
  EXPECT_EQ(u(a, 6), -1);  // no TCP flags for UDP
  EXPECT_EQ(u(a, 5), 0x10);
  EXPECT_EQ(u(a, 224), 1500);
  EXPECT_EQ(u(a, 1), 1522);  // sampled_ethernet's frame length wins over the IP length
  EXPECT_EQ(fc::to_json(a)["fields"]["sourceMacAddress"], "aa:bb:cc:dd:ee:01");
  EXPECT_EQ(fc::to_json(a)["fields"]["destinationMacAddress"], "aa:bb:cc:dd:ee:02");
  const auto& b = o.out[1];
  EXPECT_EQ(ip(b, 27), "2001:db8::1");
  EXPECT_EQ(ip(b, 28), "2001:db8::2");
  EXPECT_EQ(u(b, 6), 0x11);
  EXPECT_EQ(u(b, 5), 0xB8);
  EXPECT_EQ(u(b, 1), 400);  // no frame: the IP packet's length
  EXPECT_EQ(u(b, 31), 0);
}

TEST(Sflow, SampledHeaderWinsOverSampledIp) {
  const auto v4 =
      sb::tagged(sb::data_format(0, 3), sb::words({1500, 17, 0x0A000001, 0x0A000002, 1, 2, 0, 0}));
  for (bool header_first : {true, false}) {
    const auto h = sb::sampled_header(tcp_frame(), 90);
    auto o = decode(sb::datagram(1, {header_first ? sb::flow_sample(1, 1, 1, 1, 2, {h, v4})
                                                  : sb::flow_sample(1, 1, 1, 1, 2, {v4, h})}));
    ASSERT_EQ(o.out.size(), 1u);
    EXPECT_EQ(ip(o.out[0], 27), "2001:db8::1");
    EXPECT_EQ(ip(o.out[0], 8), "-");
  }
}

TEST(Sflow, RawIpHeaderProtocols) {
  auto o = decode(sb::datagram(
      1,
      {sb::flow_sample(1, 1, 1, 1, 2, {sb::sampled_header(sb::ipv4(17, sb::udp(7, 9)), 28, 11, 0)}),
       sb::flow_sample(2, 1, 2, 1, 2,
                       {sb::sampled_header(sb::ipv6(17, sb::udp(7, 9), 5), 48, 12, 0)})}));
  expect_errors(o.result, {});
  ASSERT_EQ(o.out.size(), 2u);
  EXPECT_EQ(ip(o.out[0], 8), "192.0.2.1");
  EXPECT_EQ(u(o.out[0], 11), 9);
  EXPECT_EQ(u(o.out[0], 256), -1);  // no Ethernet
  EXPECT_EQ(u(o.out[1], 31), 5);
  EXPECT_EQ(u(o.out[1], 7), 7);
}

TEST(Sflow, CountersSkippedAndCounted) {
  auto o = decode(sb::datagram(1, {sb::counters_sample(1), sample(1), sb::counters_sample(2)}));
  expect_errors(o.result, {});
  EXPECT_EQ(o.result.counter_samples, 2u);
  EXPECT_EQ(o.out.size(), 1u);
  // counters_sample_expanded (format 4) too.
  auto c4 = sb::counters_sample(3);
  c4[3] = 4;
  o = decode(sb::datagram(2, {c4}));
  EXPECT_EQ(o.result.counter_samples, 1u);
  expect_errors(o.result, {});
}

TEST(Sflow, Ipv6AgentAndUnknownAgentAddress) {
  sb::Bytes v6 = sb::words({5, 2});
  sb::append(v6, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9});
  sb::append(v6, sb::words({1, 1, 0, 1}));
  sb::append(v6, sample(1));
  auto o = decode(v6);
  expect_errors(o.result, {});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(ip(o.out[0], 1, kPen), "2001:db8::9");
  // Address type UNKNOWN (0): no address bytes, no sflowAgentAddress.
  sb::Bytes none = sb::words({5, 0, 1, 1, 0, 1});
  sb::append(none, sample(1));
  o = decode(none);
  expect_errors(o.result, {});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(o.out[0].find(1, kPen), nullptr);
}

// ---- sequence numbers and agent state ------------------------------------------------------

TEST(SflowSequence, GapsAreLossLateIsNotRestartIsNot) {
  fc::SflowDecoder d;
  auto seq = [&](std::uint32_t n, std::uint32_t agent = 0xC0000201, std::uint32_t sub = 0) {
    return decode(d, sb::datagram(n, {}, agent, sub)).result;
  };
  EXPECT_EQ(seq(10).sequence_lost, 0u);  // first sight
  EXPECT_EQ(seq(11).sequence_lost, 0u);
  EXPECT_EQ(seq(14).sequence_lost, 2u);  // 12 and 13 missing
  auto late = seq(13);                   // arrives late: nothing lost, nothing restarted
  EXPECT_EQ(late.sequence_lost, 0u);
  EXPECT_FALSE(late.agent_restarted);
  EXPECT_EQ(seq(15).sequence_lost, 0u);  // still expecting 15
  auto restart = seq(1);                 // far behind: the agent restarted
  EXPECT_TRUE(restart.agent_restarted);
  EXPECT_EQ(restart.sequence_lost, 0u);
  EXPECT_EQ(seq(2).sequence_lost, 0u);
  // Each sub-agent of an agent, and each agent, counts on its own.
  EXPECT_EQ(seq(100, 0xC0000201, 1).sequence_lost, 0u);
  EXPECT_EQ(seq(50, 0xC0000202).sequence_lost, 0u);
  EXPECT_EQ(seq(3).sequence_lost, 0u);
  EXPECT_EQ(d.agent_count(), 3u);
  // Wrap-around is a forward step.
  EXPECT_EQ(seq(0xFFFFFFFF, 0xC0000203).sequence_lost, 0u);
  EXPECT_EQ(seq(1, 0xC0000203).sequence_lost, 1u);  // 0 missing
}

TEST(SflowSequence, SilentAgentsExpireAndTheTableIsBounded) {
  fc::SflowLimits l;
  l.max_agents = 2;
  l.agent_timeout = std::chrono::seconds{60};
  fc::SflowDecoder d(l);
  decode(d, sb::datagram(1, {}, 1));
  decode(d, sb::datagram(1, {}, 2));
  auto third = decode(d, sb::datagram(1, {sample(1)}, 3));
  expect_errors(third.result, {{E::kAgentLimit, 1}});
  EXPECT_EQ(third.out.size(), 1u);  // its records are decoded all the same
  EXPECT_EQ(d.agent_count(), 2u);
  // Agent 1 keeps talking; after the timeout agent 2 is gone and agent 3 fits.
  decode(d, sb::datagram(2, {}, 1), kNow + std::chrono::seconds{50});
  EXPECT_EQ(d.expire(kNow + std::chrono::seconds{100}), 1u);
  EXPECT_EQ(d.agent_count(), 1u);
  expect_errors(decode(d, sb::datagram(1, {}, 3), kNow + std::chrono::seconds{100}).result, {});
  // A silent agent that comes back after the timeout starts afresh: its gap is not loss.
  const auto later = kNow + std::chrono::seconds{1000};
  EXPECT_EQ(decode(d, sb::datagram(500, {}, 1), later).result.sequence_lost, 0u);
  // When the table is full, a new agent sweeps out the expired ones first.
  fc::SflowDecoder e(l);
  decode(e, sb::datagram(1, {}, 1));
  decode(e, sb::datagram(1, {}, 2));
  expect_errors(decode(e, sb::datagram(1, {}, 3), later).result, {});
  EXPECT_EQ(e.agent_count(), 1u);
}

// ---- malformed input: one test per reason -------------------------------------------------

TEST(SflowMalformed, TooShortAndBadVersion) {
  expect_errors(decode(sb::Bytes{}).result, {{E::kTooShort, 1}});
  expect_errors(decode(sb::words({5})).result, {{E::kTooShort, 1}});
  expect_errors(decode(sb::words({5, 1, 0xC0000201, 0, 1})).result,
                {{E::kTooShort, 1}});  // header cut
  expect_errors(decode(sb::words({4, 1, 0xC0000201, 0, 1, 0, 0})).result, {{E::kBadVersion, 1}});
  expect_errors(decode(sb::words({0x00050001, 0})).result, {{E::kBadVersion, 1}});
}

TEST(SflowMalformed, BadAgentAddressType) {
  auto o = decode(sb::words({5, 3, 0xC0000201, 0, 1, 0, 0}));
  expect_errors(o.result, {{E::kBadAgentAddress, 1}});
}

TEST(SflowMalformed, SampleLengthPastTheEndStopsButKeepsEarlierSamples) {
  auto d = sb::datagram(1, {sample(1), sample(2), sample(3)});
  // The third sample's length says 4 bytes more than there are.
  const std::size_t third = d.size() - sample(3).size();
  d[third + 7] += 4;
  auto o = decode(d);
  expect_errors(o.result, {{E::kBadSampleLength, 1}});
  ASSERT_EQ(o.out.size(), 2u);
  EXPECT_EQ(su(o.out[1], fc::SflowElement::kSampleSequenceNumber), 2);
  // A datagram that ends inside a sample header.
  d = sb::datagram(1, {sample(1)}, 0xC0000201, 0, 2);
  sb::append(d, sb::words({1}));
  o = decode(d);
  expect_errors(o.result, {{E::kBadSampleLength, 1}});
  EXPECT_EQ(o.out.size(), 1u);
}

TEST(SflowMalformed, SampleCountThatLies) {
  // Says 3, holds 1: the one is kept.
  auto o = decode(sb::datagram(1, {sample(1)}, 0xC0000201, 0, 3));
  expect_errors(o.result, {{E::kSampleCount, 1}});
  EXPECT_EQ(o.out.size(), 1u);
  // Says 1, holds 2: the first is decoded, the rest is left.
  o = decode(sb::datagram(1, {sample(1), sample(2)}, 0xC0000201, 0, 1));
  expect_errors(o.result, {{E::kSampleCount, 1}});
  EXPECT_EQ(o.out.size(), 1u);
  // Says 4 billion, holds none: no loop of 4 billion.
  o = decode(sb::datagram(1, {}, 0xC0000201, 0, 0xFFFFFFFF));
  expect_errors(o.result, {{E::kSampleCount, 1}});
}

TEST(SflowMalformed, FlowSampleShorterThanItsFixedFields) {
  auto o =
      decode(sb::datagram(1, {sb::tagged(sb::data_format(0, 1), sb::words({1, 2, 3})), sample(2)}));
  expect_errors(o.result, {{E::kBadFlowSample, 1}});
  ASSERT_EQ(o.out.size(), 1u);  // the next sample is still found by the bad one's length
  EXPECT_EQ(su(o.out[0], fc::SflowElement::kSampleSequenceNumber), 2);
  o = decode(sb::datagram(
      1, {sb::tagged(sb::data_format(0, 3), sb::words({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}))}));
  expect_errors(o.result, {{E::kBadFlowSample, 1}});
  EXPECT_TRUE(o.out.empty());
}

TEST(SflowMalformed, RecordLengthPastTheSampleStopsThatSample) {
  // The sample's second record (the header) claims 400 bytes more than its sample holds. The
  // sample is still reported (with the record read before it) and the next sample is decoded.
  auto bad =
      sb::flow_sample(1, 1, 1, 1, 2, {sb::extended_switch(), sb::sampled_header(tcp_frame(), 90)});
  const std::size_t rec = 8 + 32 + sb::extended_switch().size();
  bad[rec + 6] += 1;  // + 256... and then some
  bad[rec + 7] += 144;
  auto o = decode(sb::datagram(1, {bad, sample(2)}));
  expect_errors(o.result, {{E::kBadRecordLength, 1}});
  ASSERT_EQ(o.out.size(), 2u);
  EXPECT_EQ(o.result.extended_records, 2u);
  EXPECT_EQ(ip(o.out[0], 27), "-");  // its header was not read
  EXPECT_EQ(ip(o.out[1], 27), "2001:db8::1");
  // A sample that ends inside a record header.
  auto cut = sb::flow_sample(1, 1, 1, 1, 2, {});
  cut[40 - 1] = 1;  // one record announced
  sb::append(cut, sb::words({1}));
  cut[7] += 4;  // the sample's length covers the 4 extra bytes
  o = decode(sb::datagram(1, {cut}));
  expect_errors(o.result, {{E::kBadRecordLength, 1}});
  EXPECT_EQ(o.out.size(), 1u);
}

TEST(SflowMalformed, RecordCountThatLies) {
  auto more = sb::flow_sample(1, 1, 1, 1, 2, {sb::sampled_header(tcp_frame(), 90)});
  more[39] = 3;  // says 3 records, holds 1
  auto o = decode(sb::datagram(1, {more}));
  expect_errors(o.result, {{E::kRecordCount, 1}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(u(o.out[0], 7), 40002);
  auto fewer =
      sb::flow_sample(1, 1, 1, 1, 2, {sb::extended_switch(), sb::sampled_header(tcp_frame(), 90)});
  fewer[39] = 1;  // says 1, holds 2: the header after the count is not read
  o = decode(sb::datagram(1, {fewer}));
  expect_errors(o.result, {{E::kRecordCount, 1}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(u(o.out[0], 7), -1);
}

TEST(SflowMalformed, KnownRecordsTooShort) {
  for (std::uint32_t format : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE(format);
    auto o = decode(sb::datagram(
        1, {sb::flow_sample(1, 1, 1, 1, 2,
                            {sb::tagged(sb::data_format(0, format), sb::words({1, 2, 3})),
                             sb::sampled_header(tcp_frame(), 90)})}));
    expect_errors(o.result, {{E::kBadRecord, 1}});
    ASSERT_EQ(o.out.size(), 1u);
    EXPECT_EQ(u(o.out[0], 7), 40002);  // the next record is found by the bad one's length
  }
}

TEST(SflowMalformed, HeaderLengthBeyondItsRecord) {
  auto rec = sb::sampled_header(tcp_frame(), 90);
  rec[8 + 15] += 40;  // header_length 40 bytes more than the record holds
  auto o = decode(sb::datagram(1, {sb::flow_sample(1, 1, 1, 1, 2, {rec, sb::extended_switch()})}));
  expect_errors(o.result, {{E::kBadHeaderLength, 1}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(o.result.extended_records, 1u);
  EXPECT_EQ(u(o.out[0], 312), -1);  // nothing of that record is used
  EXPECT_EQ(ip(o.out[0], 27), "-");
}

TEST(SflowMalformed, Padding) {
  // A 62-byte header whose record lacks the 2 padding bytes: parsed, counted.
  sb::Bytes frame = tcp_frame();
  frame.resize(62);  // through the TCP ports
  auto rec = sb::sampled_header(frame, 90);
  rec.resize(rec.size() - 2);
  rec[7] -= 2;
  sb::Bytes samplebody = sb::words({1, 3, 1, 1, 0, 1, 2, 1});
  sb::append(samplebody, rec);
  auto o = decode(sb::datagram(1, {sb::tagged(sb::data_format(0, 1), samplebody)}));
  // Three counts: the sample's length (118) and the record's (78) are not multiples of 4, and the
  // record lacks the opaque's padding.
  expect_errors(o.result, {{E::kBadPadding, 3}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(u(o.out[0], 7), 40002);
  // Extra bytes after the padded opaque are a length mismatch too.
  rec = sb::sampled_header(tcp_frame(), 90);
  sb::append(rec, sb::words({0}));
  rec[7] += 4;
  o = decode(sb::datagram(1, {sb::flow_sample(1, 1, 1, 1, 2, {rec})}));
  expect_errors(o.result, {{E::kBadPadding, 1}});
  EXPECT_EQ(u(o.out[0], 7), 40002);
}

TEST(SflowMalformed, UnknownFormatsAreSkippedByLength) {
  auto o = decode(sb::datagram(
      1, {sb::tagged(sb::data_format(4300, 1), sb::words({1, 2})),  // enterprise sample
          sb::tagged(sb::data_format(0, 7), sb::words({1})),        // format 7
          sb::flow_sample(1, 1, 1, 1, 2,
                          {sb::tagged(sb::data_format(9, 1), sb::words({1})),  // enterprise record
                           sb::tagged(sb::data_format(0, 99), {}),             // format 99
                           sb::sampled_header(tcp_frame(), 90)})}));
  expect_errors(o.result, {{E::kUnknownSampleFormat, 2}, {E::kUnknownRecordFormat, 2}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(u(o.out[0], 7), 40002);
}

TEST(SflowMalformed, UnknownHeaderProtocolKeepsTheSample) {
  auto o = decode(sb::datagram(
      1, {sb::flow_sample(1, 1, 1, 1, 2, {sb::sampled_header(sb::Bytes(40, 0xFF), 64, 7)})}));
  expect_errors(o.result, {{E::kUnknownHeaderProtocol, 1}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(su(o.out[0], fc::SflowElement::kHeaderProtocol), 7);
  EXPECT_EQ(u(o.out[0], 1), 64);
  EXPECT_EQ(u(o.out[0], 4), -1);
  // A sampled_ipv4 before it still gives the addresses.
  const auto v4 =
      sb::tagged(sb::data_format(0, 3), sb::words({1500, 17, 0xC0000201, 0xC0000202, 1, 2, 0, 0}));
  o = decode(sb::datagram(
      1, {sb::flow_sample(1, 1, 1, 1, 2, {v4, sb::sampled_header(sb::Bytes(40, 0xFF), 64, 7)})}));
  expect_errors(o.result, {{E::kUnknownHeaderProtocol, 1}});
  ASSERT_EQ(o.out.size(), 1u);
  EXPECT_EQ(ip(o.out[0], 8), "192.0.2.1");
  EXPECT_EQ(u(o.out[0], 1), 64);  // the frame length still comes from the header record
}

TEST(SflowMalformed, ErrorNamesAreDistinct) {
  std::set<std::string> names;
  for (std::size_t i = 0; i < fc::kSflowErrorCount; ++i)
    names.emplace(fc::to_string(static_cast<E>(i)));
  EXPECT_EQ(names.size(), fc::kSflowErrorCount);
  EXPECT_EQ(names.count("unknown"), 0u);
}

TEST(SflowMalformed, EveryPrefixAndEveryByteFlipIsSafe) {
  // Every prefix of a valid datagram, and the datagram with each byte replaced by 0xFF, each in its
  // own allocation (ASan sees any over-read); the decoder only has to stay within bounds and count.
  const auto d = sb::datagram(1, {sample(1), sb::counters_sample(1), sample(2)});
  for (std::size_t n = 0; n <= d.size(); ++n) {
    const sb::Bytes cut(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(n));
    auto o = decode(cut);
    if (n < d.size()) {
      EXPECT_GT(o.result.error_count(), 0u) << n;
    }
  }
  for (std::size_t i = 0; i < d.size(); ++i) {
    sb::Bytes flipped = d;
    flipped[i] = 0xFF;
    decode(flipped);
  }
}

}  // namespace
