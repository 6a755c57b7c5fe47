// SPDX-License-Identifier: Apache-2.0
// The key positions the decoders carry on each record (FlowRecord::keys) against the scans they
// replace: on every record of every real export in the fixtures (NetFlow v1/v5/v9, IPFIX, sFlow),
// each key slot is the field find() returns, and the 5-tuple, label and volume read through the
// positions equal those read from the same record with the positions forgotten.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/sflow.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "plugins/netflow/observed_metrics.hpp"

namespace flowd {
namespace {

using collector::KeyFields;

// Every record of a capture, as a collector that has seen it from the start decodes it.
std::vector<collector::FlowRecord> decode_all(const std::string& path) {
  std::vector<collector::CapturedPayload> payloads;
  std::size_t skipped = 0;
  collector::read_capture(
      path, [&](const collector::CapturedPayload& p) { payloads.push_back(p); }, skipped);
  collector::Decoder d;
  collector::SflowDecoder sflow;
  collector::RecordBatch out;
  const auto now = Clock::now();
  for (const auto& p : payloads) {
    if (collector::looks_like_sflow(p.bytes))
      sflow.decode(p.bytes, p.exporter, now, out);
    else
      d.decode(p.bytes, p.exporter, now, out);
  }
  return {out.begin(), out.end()};
}

class KeyFieldsFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(KeyFieldsFixture, PositionsAgreeWithTheScans) {
  const auto records = decode_all(GetParam());
  ASSERT_FALSE(records.empty()) << GetParam();
  std::size_t labelled = 0, tuples = 0;
  netflow::VolumeBatch by_position, by_scan;
  for (const auto& r : records) {
    EXPECT_TRUE(r.keys.known) << "no layout here repeats a key element";
    for (std::size_t s = 0; s < KeyFields::kSlots; ++s)
      EXPECT_EQ(r.key(static_cast<KeyFields::Slot>(s)), r.find(KeyFields::kIds[s])) << "slot " << s;
    collector::FlowRecord scanned = r;
    scanned.keys = {};
    const auto flow = netflow::flow_of(r);
    const auto flow_scanned = netflow::flow_of(scanned);
    ASSERT_EQ(flow.has_value(), flow_scanned.has_value());
    if (flow) {
      ++tuples;
      EXPECT_TRUE(FlowKey::of(*flow) == FlowKey::of(*flow_scanned));
    }
    EXPECT_EQ(netflow::label_of(r), netflow::label_of(scanned));
    labelled += netflow::label_of(r).has_value();
    if (r.options) continue;
    by_position.add(r, std::nullopt);
    by_scan.add(scanned, std::nullopt);
  }
  const auto a = by_position.items(), b = by_scan.items();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].bytes, b[i].bytes);
    EXPECT_EQ(a[i].packets, b[i].packets);
  }
  RecordProperty("tuples", static_cast<int>(tuples));
  RecordProperty("labelled", static_cast<int>(labelled));
}

const std::string kNetflow = std::string(FLOWD_FIXTURES) + "/netflow/";
const std::string kSflow = std::string(FLOWD_SOURCE_DIR) + "/tests/fixtures/sflow/";

INSTANTIATE_TEST_SUITE_P(
    Captures, KeyFieldsFixture,
    ::testing::Values(kNetflow + "softflowd-v1.pcap", kNetflow + "softflowd-v5.pcap",
                      kNetflow + "fprobe-v5.pcap", kNetflow + "pmacctd-nfprobe-v5.pcap",
                      kNetflow + "softflowd-v9.pcap", kNetflow + "softflowd-v9-sampling2.pcap",
                      kNetflow + "pmacctd-nfprobe-v9.pcap", kNetflow + "softflowd-ipfix.pcap",
                      kNetflow + "softflowd-ipfix-biflow-ether.pcap",
                      kNetflow + "softflowd-ipfix-milli.pcap",
                      kNetflow + "softflowd-ipfix-tcp.pcap", kNetflow + "pmacctd-nfprobe-v10.pcap",
                      std::string(FLOWD_FIXTURES) + "/observed/random-labels-ipfix.pcap",
                      kSflow + "pmacctd-sfprobe-rate1.pcap",
                      kSflow + "pmacctd-sfprobe-rate4.pcap"));

// A layout that repeats a key element: the first octetDeltaCount is 0, the second is not. The
// positions are not used (the scan's "first non-zero" is kept) and the field lookups still find the
// first one, as find() does.
TEST(KeyFields, ARepeatedElementFallsBackToTheScan) {
  const std::vector<std::pair<std::uint32_t, std::uint16_t>> layout{{0, 1}, {0, 2}, {0, 1}};
  const auto k = KeyFields::of(
      layout, [](const auto& f) { return f.first; }, [](const auto& f) { return f.second; });
  EXPECT_FALSE(k.known);
  collector::FlowRecord r;
  r.version = 10;
  for (auto [id, v] : {std::pair<std::uint16_t, std::uint64_t>{1, 0}, {2, 3}, {1, 500}}) {
    collector::Field f;
    f.id = id;
    f.value.kind = collector::ValueKind::kUnsigned;
    f.value.u = v;
    r.fields.push_back(f);
  }
  r.keys = k;
  EXPECT_EQ(r.key(KeyFields::kOctetDelta), &r.fields[0]);
  netflow::VolumeBatch b;
  b.add(r, std::nullopt);
  ASSERT_EQ(b.items().size(), 1u);
  EXPECT_EQ(b.items()[0].bytes, 500);
  EXPECT_EQ(b.items()[0].packets, 3);
}

// Positions that no longer match the record (fields edited after decoding) are not trusted.
TEST(KeyFields, AStalePositionIsNotTrusted) {
  collector::FlowRecord r;
  collector::Field label;
  label.id = 31;
  label.value.kind = collector::ValueKind::kUnsigned;
  label.value.u = 0x12345;
  r.fields.push_back(label);
  r.keys.known = true;
  r.keys.at[KeyFields::kFlowLabel] = 3;  // past the end
  EXPECT_EQ(r.key(KeyFields::kFlowLabel), &r.fields[0]);
  r.keys.at[KeyFields::kFlowLabel] = 0;
  r.fields[0].id = 32;  // another element there now
  EXPECT_EQ(r.key(KeyFields::kFlowLabel), nullptr);
}

}  // namespace
}  // namespace flowd
