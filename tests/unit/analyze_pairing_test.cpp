// SPDX-License-Identifier: Apache-2.0
// flowd analyze: records -> half flows (HalfFlowBuilder) and the pairing of directions
// (ConnectionPairer): matching, orientation, biflows, the window and the open-entry cap.
#include <gtest/gtest.h>

#include <vector>

#include "analyze/connection_pairing.hpp"
#include "analyze/half_flow.hpp"
#include "collector/flow_record.hpp"

namespace flowd::analyze {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{std::chrono::seconds{1795356761}};

IpAddress ip(std::string_view s) {
  return *IpAddress::parse(s);
}

HalfFlow uni(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport,
             std::uint64_t octets, TimePoint start, TimePoint end, std::uint8_t proto = 6) {
  HalfFlow f;
  f.protocol = proto;
  f.source = ip(src);
  f.destination = ip(dst);
  f.source_port = sport;
  f.destination_port = dport;
  f.octets = octets;
  f.packets = octets / 100 + 1;
  f.start = start;
  f.end = end;
  f.time_source = TimeSource::kFlow;
  return f;
}

struct Collected {
  std::vector<Connection> out;
  ConnectionPairer::Sink sink() {
    return [this](Connection&& c) { out.push_back(std::move(c)); };
  }
};

TEST(AnalyzeHalfFlow, PrefersDeltaCountersAndFinestTimes) {
  HalfFlowBuilder b;
  b.set_address(Element::kSourceIPv4Address, ip("192.0.2.1"));
  b.set_address(Element::kDestinationIPv4Address, ip("192.0.2.2"));
  b.set_unsigned(Element::kProtocolIdentifier, 6);
  b.set_unsigned(Element::kSourceTransportPort, 40010);
  b.set_unsigned(Element::kDestinationTransportPort, 5201);
  b.set_unsigned(Element::kOctetTotalCount, 999);
  b.set_unsigned(Element::kOctetDeltaCount, 1000);
  b.set_unsigned(Element::kPacketTotalCount, 7);
  b.set_time(Element::kFlowStartSeconds, kT0);
  b.set_time(Element::kFlowStartMilliseconds, kT0 + 250ms);
  b.set_time(Element::kFlowEndMilliseconds, kT0 + 2s);
  HalfFlow f;
  ASSERT_EQ(b.build(std::nullopt, f), BuildResult::kOk);
  EXPECT_EQ(f.octets, 1000u);
  EXPECT_EQ(f.packets, 7u);  // no delta: the total counts
  EXPECT_EQ(f.start, kT0 + 250ms);
  EXPECT_EQ(f.end, kT0 + 2s);
  EXPECT_EQ(f.time_source, TimeSource::kFlow);
  EXPECT_FALSE(f.biflow);
}

TEST(AnalyzeHalfFlow, WithoutTimesUsesTheArrivalAndSaysSo) {
  HalfFlowBuilder b;
  b.set_address(Element::kSourceIPv6Address, ip("2001:db8::1"));
  b.set_address(Element::kDestinationIPv6Address, ip("2001:db8::2"));
  HalfFlow f;
  EXPECT_EQ(b.build(std::nullopt, f), BuildResult::kNoTime);
  ASSERT_EQ(b.build(kT0, f), BuildResult::kOk);
  EXPECT_EQ(f.start, kT0);
  EXPECT_EQ(f.end, kT0);
  EXPECT_EQ(f.time_source, TimeSource::kReceived);

  b.set_time(Element::kFlowEndSeconds, kT0 - 5s);
  ASSERT_EQ(b.build(kT0, f), BuildResult::kOk);
  EXPECT_EQ(f.time_source, TimeSource::kFlowEnd);
  EXPECT_EQ(f.start, kT0 - 5s);
  b.set_time(Element::kObservationTimeMilliseconds, kT0 - 9s);
  ASSERT_EQ(b.build(kT0, f), BuildResult::kOk);
  EXPECT_EQ(f.time_source, TimeSource::kFlowEnd) << "flow times win over observation times";
}

TEST(AnalyzeHalfFlow, NoAddressesOrMixedFamiliesIsNotAFlow) {
  HalfFlowBuilder b;
  HalfFlow f;
  EXPECT_EQ(b.build(kT0, f), BuildResult::kNoAddresses);
  b.set_address(Element::kSourceIPv4Address, ip("192.0.2.1"));
  EXPECT_EQ(b.build(kT0, f), BuildResult::kNoAddresses);
  b.set_address(Element::kDestinationIPv6Address, ip("2001:db8::2"));
  EXPECT_EQ(b.build(kT0, f), BuildResult::kNoAddresses);
}

TEST(AnalyzeHalfFlow, IcmpTypeCodeIsNotAPort) {
  HalfFlowBuilder b;
  b.set_address(Element::kSourceIPv4Address, ip("192.0.2.1"));
  b.set_address(Element::kDestinationIPv4Address, ip("192.0.2.2"));
  b.set_unsigned(Element::kProtocolIdentifier, 1);
  b.set_unsigned(Element::kDestinationTransportPort, 2048);  // softflowd v5: echo request
  HalfFlow f;
  ASSERT_EQ(b.build(kT0, f), BuildResult::kOk);
  EXPECT_EQ(f.destination_port, 0);
}

TEST(AnalyzeHalfFlow, FromDecodedRecordWithReverseElementsAndLabel) {
  collector::FlowRecord r;
  r.received = kT0;
  auto add = [&](std::uint32_t pen, std::uint16_t id, collector::ValueKind kind, std::uint64_t u,
                 IpAddress a = {}) {
    collector::Field f;
    f.pen = pen;
    f.id = id;
    f.value.kind = kind;
    f.value.u = u;
    f.value.ip = a;
    r.fields.push_back(f);
  };
  add(0, 27, collector::ValueKind::kIpv6, 0, ip("2001:db8::1"));
  add(0, 28, collector::ValueKind::kIpv6, 0, ip("2001:db8::2"));
  add(0, 4, collector::ValueKind::kUnsigned, 6);
  add(0, 1, collector::ValueKind::kUnsigned, 5000);
  add(29305, 1, collector::ValueKind::kUnsigned, 300);
  add(29305, 2, collector::ValueKind::kUnsigned, 4);
  add(0, 31, collector::ValueKind::kUnsigned, 65572);
  HalfFlowBuilder scratch;
  HalfFlow f;
  ASSERT_EQ(half_flow_from_record(r, scratch, f), BuildResult::kOk);
  EXPECT_TRUE(f.biflow);
  EXPECT_EQ(f.reverse_octets, 300u);
  EXPECT_EQ(f.reverse_packets, 4u);
  EXPECT_EQ(f.flow_label, 65572u);
  EXPECT_EQ(f.time_source, TimeSource::kReceived);
  r.options = true;
  EXPECT_EQ(half_flow_from_record(r, scratch, f), BuildResult::kOptions);
}

TEST(AnalyzePairing, ReversedTupleIsOneConnectionOrientedByStart) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  // The server's direction is exported first; the client's started 1 ms earlier.
  p.add(uni("192.0.2.2", 5201, "192.0.2.1", 40010, 23356, kT0 + 1ms, kT0 + 3s), kT0 + 4s);
  p.add(uni("192.0.2.1", 40010, "192.0.2.2", 5201, 1086685, kT0, kT0 + 3s), kT0 + 4s);
  p.flush();
  ASSERT_EQ(got.out.size(), 1u);
  const Connection& c = got.out[0];
  EXPECT_EQ(c.pairing, Pairing::kMatched);
  EXPECT_EQ(c.source, ip("192.0.2.1"));
  EXPECT_EQ(c.source_port, 40010);
  EXPECT_EQ(c.destination_port, 5201);
  EXPECT_EQ(c.octets, 1086685u);
  EXPECT_EQ(c.reverse_octets, 23356u);
  EXPECT_EQ(c.start, kT0);
  EXPECT_EQ(c.end, kT0 + 3s);
  EXPECT_EQ(c.records, 2u);
  EXPECT_EQ(p.counters().matched, 1u);
  EXPECT_EQ(p.counters().unpaired, 0u);
}

TEST(AnalyzePairing, SameStartPutsTheLowerPortOnTheServerSide) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  p.add(uni("192.0.2.2", 7000, "192.0.2.1", 40001, 10, kT0, kT0), kT0);
  p.add(uni("192.0.2.1", 40001, "192.0.2.2", 7000, 20, kT0, kT0), kT0);
  p.flush();
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.out[0].destination_port, 7000);
  EXPECT_EQ(got.out[0].octets, 20u);
}

TEST(AnalyzePairing, ArrivalTimesDoNotDecideTheInitiator) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  // The server's record has real flow times; the client's only its arrival, later.
  p.add(uni("192.0.2.2", 7000, "192.0.2.1", 40001, 164, kT0, kT0), kT0 + 1s);
  HalfFlow client = uni("192.0.2.1", 40001, "192.0.2.2", 7000, 285, kT0 + 1s, kT0 + 1s);
  client.time_source = TimeSource::kReceived;
  p.add(client, kT0 + 1s);
  p.flush();
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.out[0].source_port, 40001);
  EXPECT_EQ(got.out[0].octets, 285u);
}

TEST(AnalyzePairing, SameDirectionRecordsMerge) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  // An active timeout splits a long flow into several records of one direction.
  p.add(uni("192.0.2.1", 40010, "192.0.2.2", 5201, 100, kT0, kT0 + 30s), kT0 + 30s);
  p.add(uni("192.0.2.1", 40010, "192.0.2.2", 5201, 200, kT0 + 30s, kT0 + 60s), kT0 + 60s);
  p.flush();
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.out[0].octets, 300u);
  EXPECT_EQ(got.out[0].pairing, Pairing::kUnpaired);
  EXPECT_EQ(got.out[0].end, kT0 + 60s);
}

TEST(AnalyzePairing, WindowClosesIdleEntriesUnpairedAndCountsThem) {
  Collected got;
  PairingOptions o;
  o.window = 10s;
  ConnectionPairer p(o, got.sink());
  p.add(uni("192.0.2.1", 40001, "192.0.2.2", 7000, 100, kT0, kT0 + 1s), kT0 + 1s);
  EXPECT_EQ(p.open_count(), 1u);
  // Other traffic moves the stream clock past the window: the first entry is closed, unpaired.
  p.add(uni("192.0.2.3", 1, "192.0.2.4", 2, 1, kT0 + 20s, kT0 + 20s), kT0 + 20s);
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.out[0].pairing, Pairing::kUnpaired);
  EXPECT_FALSE(got.out[0].evicted);
  // Its reverse, too late, is a connection of its own.
  p.add(uni("192.0.2.2", 7000, "192.0.2.1", 40001, 50, kT0 + 25s, kT0 + 25s), kT0 + 25s);
  p.flush();
  EXPECT_EQ(p.counters().unpaired, 3u);
  EXPECT_EQ(p.counters().matched, 0u);
  EXPECT_EQ(p.counters().connections, 3u);
  EXPECT_EQ(p.counters().records, 3u);
}

TEST(AnalyzePairing, ActivityKeepsAnEntryOpenBeyondOneWindow) {
  Collected got;
  PairingOptions o;
  o.window = 10s;
  ConnectionPairer p(o, got.sink());
  for (int i = 0; i < 10; ++i) {
    auto t = kT0 + std::chrono::seconds{8 * i};
    p.add(uni("192.0.2.1", 40010, "192.0.2.2", 5201, 10, t, t + 8s), t + 8s);
  }
  EXPECT_TRUE(got.out.empty());
  p.add(uni("192.0.2.2", 5201, "192.0.2.1", 40010, 5, kT0, kT0 + 80s), kT0 + 81s);
  p.flush();
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.out[0].records, 11u);
  EXPECT_EQ(got.out[0].pairing, Pairing::kMatched);
}

TEST(AnalyzePairing, SameTupleFarApartInFlowTimeSplits) {
  Collected got;
  PairingOptions o;
  o.window = 10s;
  ConnectionPairer p(o, got.sink());
  p.add(uni("192.0.2.1", 40010, "192.0.2.2", 5201, 10, kT0, kT0 + 1s), kT0 + 2s);
  // Arrives in the same second, but describes traffic an hour later (a reused port).
  p.add(uni("192.0.2.1", 40010, "192.0.2.2", 5201, 20, kT0 + 1h, kT0 + 1h), kT0 + 2s);
  p.flush();
  EXPECT_EQ(got.out.size(), 2u);
  EXPECT_EQ(p.counters().split, 1u);
}

TEST(AnalyzePairing, MaxOpenEvictsTheOldestEarly) {
  Collected got;
  PairingOptions o;
  o.max_open = 2;
  ConnectionPairer p(o, got.sink());
  p.add(uni("192.0.2.1", 1, "192.0.2.2", 80, 1, kT0, kT0), kT0);
  p.add(uni("192.0.2.1", 2, "192.0.2.2", 80, 1, kT0, kT0), kT0 + 1s);
  p.add(uni("192.0.2.1", 3, "192.0.2.2", 80, 1, kT0, kT0), kT0 + 2s);
  EXPECT_EQ(p.open_count(), 2u);
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_TRUE(got.out[0].evicted);
  EXPECT_EQ(got.out[0].source_port, 1);
  EXPECT_EQ(p.counters().evicted, 1u);
  p.flush();
  EXPECT_EQ(p.counters().connections, 3u);
}

TEST(AnalyzePairing, ManyEntriesStayBounded) {
  Collected got;
  PairingOptions o;
  o.max_open = 100;
  o.window = 5s;
  ConnectionPairer p(o, got.sink());
  for (int i = 0; i < 20000; ++i) {
    auto t = kT0 + std::chrono::milliseconds{i};
    p.add(uni("192.0.2.1", static_cast<std::uint16_t>(i), "192.0.2.2", 80, 1, t, t), t);
    ASSERT_LE(p.open_count(), 100u);
  }
  p.flush();
  EXPECT_EQ(got.out.size(), 20000u);
}

TEST(AnalyzePairing, BiflowIsAPairAndOneWithoutReplyIsNot) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  HalfFlow f = uni("2001:db8::1", 40011, "2001:db8::2", 5202, 205000, kT0, kT0 + 1s);
  f.biflow = true;
  f.reverse_octets = 5000;
  f.reverse_packets = 40;
  p.add(f, kT0 + 2s);
  HalfFlow syn = uni("192.0.2.1", 40003, "192.0.2.2", 7999, 60, kT0, kT0);
  syn.biflow = true;  // reverse elements present, but nothing came back
  p.add(syn, kT0 + 2s);
  p.flush();
  ASSERT_EQ(got.out.size(), 2u);
  if (got.out[0].source_port != 40011) std::swap(got.out[0], got.out[1]);
  EXPECT_EQ(got.out[0].pairing, Pairing::kBiflow);
  EXPECT_EQ(got.out[0].reverse_octets, 5000u);
  EXPECT_EQ(got.out[0].source_port, 40011);
  EXPECT_EQ(got.out[1].pairing, Pairing::kUnpaired);
  EXPECT_EQ(got.out[1].source_port, 40003);
  EXPECT_EQ(p.counters().biflow, 1u);
}

TEST(AnalyzePairing, IcmpBothWaysIsOneConversation) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  p.add(uni("192.0.2.1", 0, "192.0.2.2", 0, 252, kT0, kT0 + 400ms, kIcmp), kT0 + 1s);
  p.add(uni("192.0.2.2", 0, "192.0.2.1", 0, 252, kT0 + 1ms, kT0 + 401ms, kIcmp), kT0 + 1s);
  // Same addresses, another protocol: not the same connection.
  p.add(uni("192.0.2.2", 0, "192.0.2.1", 0, 1, kT0, kT0, 17), kT0 + 1s);
  p.flush();
  ASSERT_EQ(got.out.size(), 2u);
  EXPECT_EQ(p.counters().matched, 1u);
}

TEST(AnalyzePairing, TimeSourceIsTheWorstOfTheRecords) {
  Collected got;
  ConnectionPairer p({}, got.sink());
  HalfFlow a = uni("192.0.2.1", 40001, "192.0.2.2", 7000, 1, kT0, kT0);
  HalfFlow b = uni("192.0.2.2", 7000, "192.0.2.1", 40001, 1, kT0, kT0);
  b.time_source = TimeSource::kReceived;
  p.add(a, kT0);
  p.add(b, kT0);
  p.flush();
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.out[0].time_source, TimeSource::kReceived);
}

}  // namespace
}  // namespace flowd::analyze
