// SPDX-License-Identifier: Apache-2.0
// The sFlow v5 decoder on real exports (tests/fixtures/sflow/, made by make_fixtures.sh): pmacctd's
// sfprobe reading ../shared/fixtures/netflow/source-traffic.pcap at sampling rates 1 and 4. Every
// flow sample is compared, in order, with tshark's dissection (CASE.tshark.json.gz), flow label
// included; and the records, aggregated as pmacct's print plugin aggregates, with sfacctd's decode
// of the same datagrams (CASE.sfacctd.csv). `flowd decode` routes the capture to this decoder.
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "app/decode_cli.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/record_json.hpp"
#include "collector/sflow.hpp"

namespace fc = flowd::collector;

namespace {

const std::string kDir = std::string(FLOWD_SOURCE_DIR) + "/tests/fixtures/sflow/";
const std::vector<std::string> kCases = {"pmacctd-sfprobe-rate1", "pmacctd-sfprobe-rate4"};

std::string gunzip_file(const std::string& path) {
  std::string out;
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  if (!f) return out;
  char buf[65536];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  gzclose(f);
  return out;
}

struct Decoded {
  std::vector<fc::CapturedPayload> datagrams;
  fc::RecordBatch records;
  std::vector<std::size_t> records_per_datagram;
  fc::SflowResult totals;  // errors, lost, counter/extended counts summed
};

Decoded decode_case(const std::string& name, bool apply_sampling = false) {
  Decoded d;
  std::size_t skipped = 0;
  fc::read_capture(
      kDir + name + ".pcap", [&](const fc::CapturedPayload& p) { d.datagrams.push_back(p); },
      skipped);
  EXPECT_EQ(skipped, 0u);
  fc::SflowLimits limits;
  limits.apply_sampling = apply_sampling;
  fc::SflowDecoder dec(limits);
  for (const auto& p : d.datagrams) {
    EXPECT_TRUE(fc::looks_like_sflow(p.bytes));
    const std::size_t before = d.records.size();
    const auto r = dec.decode(p.bytes, p.exporter, p.time, d.records);
    d.records_per_datagram.push_back(d.records.size() - before);
    for (std::size_t i = 0; i < r.errors.size(); ++i) d.totals.errors[i] += r.errors[i];
    d.totals.sequence_lost += r.sequence_lost;
    d.totals.counter_samples += r.counter_samples;
    d.totals.extended_records += r.extended_records;
    d.totals.agent_restarted |= r.agent_restarted;
  }
  return d;
}

std::int64_t u(const fc::FlowRecord& r, std::uint16_t id, std::uint32_t pen = 0) {
  const auto* f = r.find(id, pen);
  if (!f || f->value.kind != fc::ValueKind::kUnsigned) return -1;
  return static_cast<std::int64_t>(f->value.u);
}
std::int64_t su(const fc::FlowRecord& r, fc::SflowElement e) {
  return u(r, static_cast<std::uint16_t>(e), fc::kInmonPen);
}
std::string text(const fc::FlowRecord& r, std::uint16_t id, std::uint32_t pen = 0) {
  const auto* f = r.find(id, pen);
  return f ? fc::to_json(f->value).dump() : "null";
}
// A tshark column: null stays null, numbers and strings as JSON text for comparison.
std::string col(const nlohmann::json& row, const std::map<std::string, std::size_t>& idx,
                const char* name) {
  return row.at(idx.at(name)).dump();
}
std::string num_or_null(std::int64_t v) {
  return v < 0 ? "null" : std::to_string(v);
}

class SflowFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(SflowFixture, EveryFlowSampleMatchesTshark) {
  const std::string name = GetParam();
  const auto doc = nlohmann::json::parse(gunzip_file(kDir + name + ".tshark.json.gz"));
  std::map<std::string, std::size_t> idx;
  for (std::size_t i = 0; i < doc.at("sample_columns").size(); ++i)
    idx[doc["sample_columns"][i]] = i;
  const auto& samples = doc.at("samples");
  const auto& datagrams = doc.at("datagrams");

  const Decoded d = decode_case(name);
  EXPECT_EQ(d.totals.error_count(), 0u);
  EXPECT_EQ(d.totals.sequence_lost, 0u);  // loopback: pmacctd's sequence numbers have no gap
  EXPECT_FALSE(d.totals.agent_restarted);
  EXPECT_EQ(d.totals.extended_records,
            samples.size());  // pmacctd adds extended_switch to each sample
  ASSERT_EQ(d.datagrams.size(), datagrams.size());
  ASSERT_EQ(d.records.size(), samples.size());

  std::size_t k = 0, counters = 0;
  for (std::size_t g = 0; g < datagrams.size(); ++g) {
    // agent, sub_agent, sequence, uptime, samples, flow_samples, counter_samples
    const auto& dg = datagrams[g];
    EXPECT_EQ(dg[4].get<std::size_t>(), dg[5].get<std::size_t>() + dg[6].get<std::size_t>());
    EXPECT_EQ(d.records_per_datagram[g], dg[5].get<std::size_t>()) << "datagram " << g;
    counters += dg[6].get<std::size_t>();
    for (std::size_t n = 0; n < d.records_per_datagram[g]; ++n, ++k) {
      const fc::FlowRecord& r = d.records[k];
      const auto& s = samples[k];
      SCOPED_TRACE(name + " sample " + std::to_string(k) + ": " + s.dump());
      EXPECT_EQ(s[idx["datagram"]].get<std::size_t>(), g);
      EXPECT_EQ(text(r, 1, fc::kInmonPen), dg[0].dump());
      EXPECT_EQ(su(r, fc::SflowElement::kSubAgentId), dg[1].get<std::int64_t>());
      EXPECT_EQ(r.domain, dg[1].get<std::uint32_t>());
      EXPECT_EQ(su(r, fc::SflowElement::kDatagramSequenceNumber), dg[2].get<std::int64_t>());
      EXPECT_EQ(su(r, fc::SflowElement::kUptime), dg[3].get<std::int64_t>());

      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kSampleSequenceNumber)), col(s, idx, "seq"));
      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kSourceIdType)), col(s, idx, "source_class"));
      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kSourceIdIndex)), col(s, idx, "source_index"));
      EXPECT_EQ(num_or_null(u(r, 34)), col(s, idx, "rate"));
      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kSamplePool)), col(s, idx, "pool"));
      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kDrops)), col(s, idx, "drops"));
      EXPECT_EQ(num_or_null(u(r, 10)), col(s, idx, "in_if"));
      EXPECT_EQ(num_or_null(u(r, 14)), col(s, idx, "out_if"));
      EXPECT_EQ(num_or_null(u(r, 312)), col(s, idx, "frame_length"));
      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kStripped)), col(s, idx, "stripped"));
      EXPECT_EQ(num_or_null(su(r, fc::SflowElement::kHeaderLength)), col(s, idx, "header_length"));
      EXPECT_EQ(text(r, 56), col(s, idx, "src_mac"));
      EXPECT_EQ(text(r, 80), col(s, idx, "dst_mac"));
      EXPECT_EQ(num_or_null(u(r, 256)), col(s, idx, "ethertype"));
      const bool v6 = s[idx["ipver"]] == 6;
      EXPECT_EQ(text(r, v6 ? 27 : 8), col(s, idx, "src"));
      EXPECT_EQ(text(r, v6 ? 28 : 12), col(s, idx, "dst"));
      EXPECT_EQ(num_or_null(u(r, 4)), col(s, idx, "proto"));
      EXPECT_EQ(num_or_null(u(r, 7)), col(s, idx, "sport"));
      EXPECT_EQ(num_or_null(u(r, 11)), col(s, idx, "dport"));
      EXPECT_EQ(num_or_null(u(r, 6)), col(s, idx, "tcp_flags"));
      EXPECT_EQ(num_or_null(u(r, 5)), col(s, idx, "tos"));
      // The kernel's flow labels of the source traffic, bit for bit (tshark's ipv6.flow).
      EXPECT_EQ(num_or_null(u(r, 31)), col(s, idx, "flow_label"));
      EXPECT_EQ(num_or_null(u(r, 224)), col(s, idx, "ip_len"));
      const auto& type = s[idx["icmp_type"]];
      const std::int64_t icmp = u(r, v6 ? 139 : 32);
      if (type.is_null()) {
        EXPECT_EQ(icmp, -1);
      } else {
        EXPECT_EQ(icmp, type.get<std::int64_t>() * 256 + s[idx["icmp_code"]].get<std::int64_t>());
      }
      // One sampled packet of frame_length bytes, not scaled.
      EXPECT_EQ(u(r, 2), 1);
      EXPECT_EQ(u(r, 1), u(r, 312));
    }
  }
  EXPECT_EQ(k, samples.size());
  // pmacctd sends a counters_sample now and then (its timer, so not in every run): skipped,
  // counted.
  EXPECT_EQ(d.totals.counter_samples, counters);
}

// sfacctd's print plugin (CSV) aggregates on its primitives and ORs TCP flags; PACKETS and BYTES
// are the samples and their frame lengths (no renormalisation). flowd's records are aggregated the
// same way: the datagram sequence number (export_proto_seqno) keeps the aggregates to a few samples
// each.
using SfacctdKey = std::tuple<std::string, std::string, std::string, std::string, std::string,
                              std::string, int, int, std::string, int, int, std::int64_t>;
struct SfacctdValue {
  std::int64_t packets = 0, bytes = 0, flags = 0;
  bool operator==(const SfacctdValue&) const = default;
};

std::string proto_name(std::int64_t p) {
  switch (p) {
    case 1:
      return "icmp";
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 58:
      return "ipv6-icmp";
    default:
      return std::to_string(p);
  }
}

std::string unquoted(const std::string& json_text) {
  return json_text.size() >= 2 && json_text.front() == '"'
             ? json_text.substr(1, json_text.size() - 2)
             : json_text;
}

TEST_P(SflowFixture, AggregatesMatchSfacctd) {
  const std::string name = GetParam();
  std::ifstream in(kDir + name + ".sfacctd.csv");
  ASSERT_TRUE(in) << name;
  std::string line;
  std::getline(in, line);
  ASSERT_EQ(line,
            "SRC_MAC,DST_MAC,VLAN,IN_IFACE,OUT_IFACE,SRC_IP,DST_IP,SRC_PORT,DST_PORT,TCP_FLAGS,"
            "PROTOCOL,TOS,"
            "SAMPLING_RATE,EXPORT_PROTO_SEQNO,PACKETS,BYTES");
  std::map<SfacctdKey, SfacctdValue> want;
  while (std::getline(in, line)) {
    std::vector<std::string> c;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) c.push_back(x);
    ASSERT_EQ(c.size(), 16u) << line;
    // Key order: seqno, src_mac, dst_mac, vlan, in, out, sport, dport, src, dst, proto, tos, rate.
    SfacctdKey key{c[13],
                   c[0],
                   c[1],
                   c[2],
                   c[3] + "/" + c[4],
                   c[5] + ">" + c[6],
                   std::stoi(c[7]),
                   std::stoi(c[8]),
                   c[10],
                   std::stoi(c[11]),
                   std::stoi(c[12]),
                   0};
    auto& v = want[key];
    v.packets += std::stoll(c[14]);
    v.bytes += std::stoll(c[15]);
    v.flags |= std::stoll(c[9]);
  }
  ASSERT_FALSE(want.empty());

  const Decoded d = decode_case(name);
  std::map<SfacctdKey, SfacctdValue> got;
  for (const auto& r : d.records) {
    const bool v6 = r.find(27) != nullptr;
    SfacctdKey key{std::to_string(su(r, fc::SflowElement::kDatagramSequenceNumber)),
                   unquoted(text(r, 56)),
                   unquoted(text(r, 80)),
                   std::to_string(std::max<std::int64_t>(u(r, 58), 0)),
                   std::to_string(u(r, 10)) + "/" + std::to_string(u(r, 14)),
                   unquoted(text(r, v6 ? 27 : 8)) + ">" + unquoted(text(r, v6 ? 28 : 12)),
                   static_cast<int>(std::max<std::int64_t>(u(r, 7), 0)),  // sfacctd: 0 for ICMP
                   static_cast<int>(std::max<std::int64_t>(u(r, 11), 0)),
                   proto_name(u(r, 4)),
                   static_cast<int>(u(r, 5)),
                   static_cast<int>(u(r, 34)),
                   0};
    auto& v = got[key];
    v.packets += u(r, 2);
    v.bytes += u(r, 1);
    v.flags |= std::max<std::int64_t>(u(r, 6), 0);
  }
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [key, value] : want) {
    auto it = got.find(key);
    if (it == got.end()) {
      ADD_FAILURE() << name << ": sfacctd aggregate missing from flowd: seq " << std::get<0>(key)
                    << " " << std::get<5>(key) << " " << std::get<6>(key) << ">"
                    << std::get<7>(key);
      continue;
    }
    EXPECT_EQ(it->second, value) << name << " seq " << std::get<0>(key) << " " << std::get<5>(key)
                                 << " " << std::get<6>(key) << ">" << std::get<7>(key) << ": flowd "
                                 << it->second.packets << "/" << it->second.bytes << "/"
                                 << it->second.flags << ", sfacctd " << value.packets << "/"
                                 << value.bytes << "/" << value.flags;
  }
}

TEST_P(SflowFixture, ApplySamplingMultipliesByTheSampleRate) {
  const Decoded plain = decode_case(GetParam());
  const Decoded scaled = decode_case(GetParam(), true);
  ASSERT_EQ(plain.records.size(), scaled.records.size());
  for (std::size_t i = 0; i < plain.records.size(); ++i) {
    const std::int64_t rate = u(plain.records[i], 34);
    EXPECT_EQ(u(scaled.records[i], 2), rate);
    EXPECT_EQ(u(scaled.records[i], 1), u(plain.records[i], 1) * rate);
  }
}

INSTANTIATE_TEST_SUITE_P(Sflow, SflowFixture, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string s = info.param;
  for (auto& c : s)
    if (c == '-') c = '_';
  return s;
});

TEST(SflowFixtureDetail, Rate4IsASubsetOfRate1) {
  // sampling_rate 4 samples at random: about a quarter of the packets, each with a pool that grows
  // by the packets seen since the last sample (sFlow v5: sample_pool).
  const Decoded r1 = decode_case("pmacctd-sfprobe-rate1");
  const Decoded r4 = decode_case("pmacctd-sfprobe-rate4");
  EXPECT_GT(r4.records.size(), r1.records.size() / 6);
  EXPECT_LT(r4.records.size(), r1.records.size() / 2);
  std::int64_t last_pool = 0;
  for (const auto& r : r4.records) {
    EXPECT_EQ(u(r, 34), 4);
    EXPECT_GT(su(r, fc::SflowElement::kSamplePool), last_pool);
    last_pool = su(r, fc::SflowElement::kSamplePool);
  }
  EXPECT_LE(last_pool, static_cast<std::int64_t>(r1.records.size()));
}

TEST(SflowFixtureDetail, FlowdDecodePrintsSflowRecords) {
  // The CLI routes datagrams that start with the 32-bit word 5 to the sFlow decoder.
  std::ostringstream captured;
  auto* old = std::cout.rdbuf(captured.rdbuf());
  const int rc = flowd::decode_command({kDir + "pmacctd-sfprobe-rate4.pcap", "--apply-sampling"});
  std::cout.rdbuf(old);
  EXPECT_EQ(rc, 0);
  std::istringstream lines(captured.str());
  std::size_t n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["protocol"], "sflow");
    EXPECT_EQ(j["version"], 5);
    EXPECT_EQ(j["fields"]["packetDeltaCount"], 4);
    EXPECT_TRUE(j["fields"].contains("sflowSamplePool"));
  }
  EXPECT_EQ(n, decode_case("pmacctd-sfprobe-rate4").records.size());
}

}  // namespace
