// SPDX-License-Identifier: Apache-2.0
// Every fixture export (v1, v5, v9, IPFIX over UDP and TCP) decoded and compared per record with
// tshark's decode (fixtures/netflow/CASE.tshark.json) and nfdump's row count, and the hand-crafted
// malformed payloads of every version (fixtures/malformed/expected.json).
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;

class NetflowFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(NetflowFixture, MatchesTsharkPerRecord) {
  const std::string name = GetParam();
  std::ifstream in(kFixtures + "/netflow/" + name + ".tshark.json");
  const auto doc = nlohmann::json::parse(in);
  std::vector<nlohmann::json> expected;
  for (const auto& m : doc.at("tshark"))
    if (m.contains("records"))
      for (const auto& r : m.at("records")) expected.push_back(r);

  const CaseOutput got = decode_case(name);
  EXPECT_TRUE(got.errors.empty()) << name << ": "
                                  << (got.errors.empty() ? "" : fc::to_string(got.errors[0]));
  // No case here is affected by tshark stopping at the v9 header count (fixtures README,
  // disagreement 1: tshark 4.0.17 decoded all 30 softflowd v9 records), but softflowd's count (data
  // records only) never bounds us: we parse by lengths, so the record count must equal nfdump's
  // (nfcapd ignores count too).
  EXPECT_EQ(got.data_records, nfdump_rows(name)) << name;
  EXPECT_EQ(doc.at("tshark_records_total").get<std::size_t>(), expected.size());
  ASSERT_EQ(got.data_records, expected.size()) << name;

  std::size_t i = 0;
  for (const auto& rec : got.records) {
    if (rec.options) continue;
    const auto& e = expected[i++];
    SCOPED_TRACE(name + " record " + std::to_string(i) + ": " + e.dump());
    if (e.contains("template")) {
      EXPECT_EQ(rec.template_id, e.at("template").get<int>());
    } else {
      EXPECT_EQ(rec.template_id, 0);
    }
    EXPECT_EQ(addr_of(rec, 8, 27), e.at("src").get<std::string>());
    EXPECT_EQ(addr_of(rec, 12, 28), e.at("dst").get<std::string>());
    EXPECT_EQ(uint_of(rec, 4), e.at("proto").get<int>());
    if (e.contains("sport")) {
      EXPECT_EQ(uint_of(rec, 7), e.at("sport").get<int>());
    }
    if (e.contains("dport")) {
      EXPECT_EQ(uint_of(rec, 11), e.at("dport").get<int>());
    }
    // ICMP type/code (IE 32 / 139); biflow records list [forward, reverse].
    auto first = [](const nlohmann::json& j) { return j.is_array() ? j.at(0) : j; };
    if (e.contains("icmp")) {
      EXPECT_EQ(uint_of(rec, 32), hex_of(first(e.at("icmp"))));
    }
    if (e.contains("icmp6_type")) {
      EXPECT_EQ(uint_of(rec, 139),
                first(e.at("icmp6_type")).get<int>() * 256 + first(e.at("icmp6_code")).get<int>());
      if (e.at("icmp6_type").is_array()) {
        EXPECT_EQ(uint_of(rec, 139, 29305),
                  e.at("icmp6_type")[1].get<int>() * 256 + e.at("icmp6_code")[1].get<int>());
      }
    }
    const auto& pk = e.at("packets");
    const auto& oc = e.at("octets");
    if (pk.is_array()) {  // biflow: [forward, reverse]; reverse elements are PEN 29305
      EXPECT_EQ(uint_of(rec, 2), pk[0].get<std::int64_t>());
      EXPECT_EQ(uint_of(rec, 2, 29305), pk[1].get<std::int64_t>());
      EXPECT_EQ(uint_of(rec, 1), oc[0].get<std::int64_t>());
      EXPECT_EQ(uint_of(rec, 1, 29305), oc[1].get<std::int64_t>());
      if (e.contains("tcp_flags")) {
        EXPECT_EQ(uint_of(rec, 6), hex_of(e.at("tcp_flags")[0]));
        EXPECT_EQ(uint_of(rec, 6, 29305), hex_of(e.at("tcp_flags")[1]));
      }
      if (e.contains("src_mac")) {
        auto j = fc::to_json(rec);
        EXPECT_EQ(j["fields"]["sourceMacAddress"], e.at("src_mac"));
      }
    } else {
      EXPECT_EQ(uint_of(rec, 2), pk.get<std::int64_t>());
      EXPECT_EQ(uint_of(rec, 1), oc.get<std::int64_t>());
      if (e.contains("tcp_flags")) {
        EXPECT_EQ(uint_of(rec, 6), hex_of(e.at("tcp_flags")));
      }
    }
    // Every flow record gets an absolute start time (v1/v5/v9: from the header; IPFIX: 152 or 22 +
    // 160).
    const auto* start = rec.find(152);
    ASSERT_NE(start, nullptr);
    EXPECT_EQ(start->value.kind, fc::ValueKind::kDateTime);
  }
}

INSTANTIATE_TEST_SUITE_P(Netflow, NetflowFixture,
                         ::testing::Values("softflowd-v1", "softflowd-v5", "softflowd-v9",
                                           "softflowd-ipfix", "softflowd-ipfix-milli",
                                           "softflowd-ipfix-biflow-ether", "softflowd-v9-sampling2",
                                           "softflowd-ipfix-tcp", "pmacctd-nfprobe-v5",
                                           "pmacctd-nfprobe-v9", "pmacctd-nfprobe-v10",
                                           "fprobe-v5"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (auto& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(NetflowFixtureDetail, TimesAndOptions) {
  // softflowd -A milli: 40003 -> 7999 starts 2026-11-22T14:12:39.904Z (fixtures README).
  auto milli = decode_case("softflowd-ipfix-milli");
  bool seen = false;
  for (const auto& r : milli.records) {
    if (uint_of(r, 7) == 40003 && uint_of(r, 11) == 7999) {
      EXPECT_EQ(iso_ms(r.find(152)).substr(0, 23), "2026-11-22T14:12:39.904");
      seen = true;
    }
  }
  EXPECT_TRUE(seen);
  // softflowd v9: one options record, scope Interface, SAMPLING_INTERVAL 1, IF_NAME
  // "source-traffic.p".
  auto v9 = decode_case("softflowd-v9");
  std::size_t options = 0;
  for (const auto& r : v9.records) {
    if (!r.options) continue;
    ++options;
    EXPECT_EQ(r.template_id, 256);
    EXPECT_EQ(uint_of(r, 34), 1);
    EXPECT_EQ(uint_of(r, 10), 0);  // scope Interface -> ingressInterface
    ASSERT_NE(r.find(82), nullptr);
    EXPECT_EQ(r.find(82)->value.bytes, "source-traffic.p");
  }
  EXPECT_EQ(options, 1u);
  // The first flow's FIRST = 0 (fixtures README, quirk 4): true time 2026-11-22T14:12:37.037Z, not
  // 1970. v9 has no sub-second header field, so unix_secs*1000 - (sysUptime - FIRST) is up to 1 s
  // early: 14:12:41.000 - 4.653 s = 14:12:36.347.
  bool first_seen = false;
  for (const auto& r : v9.records) {
    if (addr_of(r, 8, 27) == "fe80::ff:fe00:2" && uint_of(r, 22) == 0) {
      EXPECT_EQ(iso_ms(r.find(152)).substr(0, 23), "2026-11-22T14:12:36.347");
      first_seen = true;
    }
  }
  EXPECT_TRUE(first_seen);
  // IPFIX: 22/21 are relative to systemInitTimeMilliseconds (160, options record), giving the true
  // time.
  auto ipfix_plain = decode_case("softflowd-ipfix");
  for (const auto& r : ipfix_plain.records) {
    if (addr_of(r, 8, 27) == "fe80::ff:fe00:2" && uint_of(r, 22) == 0) {
      EXPECT_EQ(iso_ms(r.find(152)).substr(0, 23), "2026-11-22T14:12:37.037");
    }
  }
  // sampling2: SAMPLING_INTERVAL 2.
  auto s2 = decode_case("softflowd-v9-sampling2");
  bool sampling = false;
  for (const auto& r : s2.records)
    if (r.options) sampling = uint_of(r, 34) == 2;
  EXPECT_TRUE(sampling);
  // pmacctd IPFIX is RFC-correct: no sequence loss. softflowd's post-message count is a backward
  // jump (restart), not loss.
  EXPECT_EQ(decode_case("pmacctd-nfprobe-v10").sequence_lost, 0u);
  EXPECT_EQ(decode_case("softflowd-ipfix").sequence_lost, 0u);
  EXPECT_EQ(decode_case("pmacctd-nfprobe-v9").sequence_lost, 0u);
}

TEST(CollectorMalformed, EveryFileInExpectedJson) {
  std::ifstream in(kFixtures + "/malformed/expected.json");
  const auto doc = nlohmann::json::parse(in);
  std::size_t checked = 0;
  for (const auto& entry : doc.at("files")) {
    const std::string file = entry.at("file");
    SCOPED_TRACE(file);
    fc::Decoder dec;
    // The withdrawal steps depend on the earlier steps: run the sequence from step 1.
    if (file.rfind("ipfix-withdrawal-", 0) == 0 && file != "ipfix-withdrawal-1-template.bin") {
      for (const char* step : {"ipfix-withdrawal-1-template.bin", "ipfix-withdrawal-2-data.bin",
                               "ipfix-withdrawal-3-withdraw.bin"}) {
        if (file == step) break;
        decode_file(dec, step);
      }
    }
    auto o = decode_file(dec, file);
    const auto& r = o.result;
    EXPECT_EQ(r.records, o.records.size());
    for (const auto& rec : o.records) (void)fc::to_json(rec).dump();  // must not throw
    using E = fc::DecodeError;
    if (file == "v5-truncated-header.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_TRUE(has_error(r, E::kTooShort));
    } else if (file == "v5-count-exceeds-payload.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_TRUE(has_error(r, E::kBadLength));
    } else if (file == "v5-valid-2-records.bin") {
      ASSERT_EQ(r.records, 2u);
      EXPECT_TRUE(r.errors.empty());
      EXPECT_EQ(addr_of(o.records[0], 8, 27), "192.0.2.1");
      EXPECT_EQ(uint_of(o.records[0], 7), 40001);
      EXPECT_EQ(uint_of(o.records[0], 2), 5);
      EXPECT_EQ(uint_of(o.records[0], 1), 285);
      EXPECT_EQ(uint_of(o.records[0], 6), 0x1b);
      EXPECT_EQ(uint_of(o.records[1], 2), 3);
      EXPECT_EQ(uint_of(o.records[1], 1), 164);
      EXPECT_EQ(uint_of(o.records[1], 6), 0x13);
      for (const auto& rec : o.records) {
        EXPECT_EQ(iso_ms(rec.find(152)).substr(0, 23), "2026-11-22T14:12:39.904");
        EXPECT_EQ(iso_ms(rec.find(153)).substr(0, 23), "2026-11-22T14:12:39.904");
        EXPECT_EQ(uint_of(rec, 22), 1391);  // stays kUnsigned
      }
    } else if (file == "v9-flowset-length-zero.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_EQ(r.templates, 1u);
      EXPECT_EQ(dec.template_count(), 1u);
      EXPECT_TRUE(has_error(r, E::kBadSetLength));
    } else if (file == "v9-template-field-count-65535.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_EQ(r.templates, 0u);
      EXPECT_EQ(dec.template_count(), 0u);
      EXPECT_TRUE(has_error(r, E::kBadTemplate));
    } else if (file == "ipfix-set-length-beyond-message.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_EQ(dec.template_count(), 0u);  // strict: template 300 not committed
      EXPECT_TRUE(has_error(r, E::kBadSetLength));
    } else if (file == "ipfix-message-length-lt-16.bin" ||
               file == "ipfix-message-length-exceeds-datagram.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_EQ(dec.template_count(), 0u);
      EXPECT_TRUE(has_error(r, E::kBadLength));
    } else if (file == "ipfix-varlen-255-overrun.bin") {
      EXPECT_EQ(r.records, 0u);
      EXPECT_EQ(dec.template_count(), 0u);  // strict: template 310 not committed
      EXPECT_TRUE(has_error(r, E::kBadRecord));
    } else if (file == "ipfix-varlen-valid.bin") {
      ASSERT_EQ(r.records, 2u);
      EXPECT_EQ(uint_of(o.records[0], 4), 6);
      EXPECT_EQ(o.records[0].find(82)->value.kind, fc::ValueKind::kString);
      EXPECT_EQ(o.records[0].find(82)->value.bytes, "eth0");
      EXPECT_EQ(uint_of(o.records[1], 4), 17);
      EXPECT_EQ(o.records[1].find(82)->value.bytes, std::string(300, 'x'));
      EXPECT_EQ(fc::to_json(o.records[0])["fields"]["interfaceName"], "eth0");
    } else if (file == "ipfix-withdrawal-1-template.bin") {
      EXPECT_EQ(r.templates, 1u);
      EXPECT_EQ(dec.template_count(), 1u);
    } else if (file == "ipfix-withdrawal-2-data.bin") {
      ASSERT_EQ(r.records, 1u);
      EXPECT_EQ(addr_of(o.records[0], 8, 27), "192.0.2.1");
      EXPECT_EQ(addr_of(o.records[0], 12, 28), "192.0.2.2");
      EXPECT_EQ(uint_of(o.records[0], 4), 1);
      EXPECT_EQ(uint_of(o.records[0], 2), 3);
    } else if (file == "ipfix-withdrawal-3-withdraw.bin" || file == "ipfix-withdrawal-all.bin") {
      // Our choice: UDP withdrawals are ignored (RFC 7011 §8) and reported.
      EXPECT_TRUE(has_error(r, E::kWithdrawalIgnored));
      if (file == "ipfix-withdrawal-3-withdraw.bin") {
        EXPECT_EQ(dec.template_count(), 1u);
      }
    } else if (file == "ipfix-withdrawal-4-data.bin") {
      EXPECT_EQ(r.records, 1u);  // withdrawal ignored over UDP: still decoded (as tshark)
    } else if (file == "ipfix-enterprise-fields.bin") {
      ASSERT_EQ(r.records, 1u);
      const auto& rec = o.records[0];
      EXPECT_EQ(uint_of(rec, 7), 40010);
      EXPECT_EQ(uint_of(rec, 11), 5201);
      EXPECT_EQ(uint_of(rec, 1), 1086685);
      EXPECT_EQ(uint_of(rec, 1, 29305), 23356);
      ASSERT_NE(rec.find(1, 32473), nullptr);
      EXPECT_EQ(rec.find(1, 32473)->value.kind, fc::ValueKind::kOctets);
      const auto j = fc::to_json(rec);
      EXPECT_EQ(j["fields"]["reverseOctetDeltaCount"], 23356);
      EXPECT_EQ(j["fields"]["e32473id1"], "deadbeef");
      EXPECT_EQ(j["fields"]["octetDeltaCount"], 1086685);
    } else if (file == "ipfix-flowlabel-scitags.bin") {
      ASSERT_EQ(r.records, 3u);
      const auto& exp = entry.at("expect");
      for (std::size_t k = 0; k < 3; ++k) {
        EXPECT_EQ(uint_of(o.records[k], 31), exp[k].at("flowLabelIPv6").get<std::int64_t>());
        EXPECT_EQ(addr_of(o.records[k], 8, 27), exp[k].at("src").get<std::string>());
        EXPECT_EQ(uint_of(o.records[k], 1), exp[k].at("octets").get<std::int64_t>());
        EXPECT_EQ(uint_of(o.records[k], 2), exp[k].at("packets").get<std::int64_t>());
      }
      EXPECT_EQ(uint_of(o.records[0], 31), 65572);
      EXPECT_EQ(uint_of(o.records[1], 31), 590117);
      EXPECT_EQ(uint_of(o.records[2], 31), 196624);
    } else {
      ADD_FAILURE() << "no expectation coded for " << file;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 17u);  // every .bin in malformed/
}

TEST(CollectorMalformed, WithdrawalsHonouredOverTcp) {
  fc::DecoderLimits tcp;
  tcp.udp = false;
  fc::Decoder dec(tcp);
  EXPECT_EQ(decode_file(dec, "ipfix-withdrawal-1-template.bin").result.templates, 1u);
  EXPECT_EQ(decode_file(dec, "ipfix-withdrawal-2-data.bin").result.records, 1u);
  auto w = decode_file(dec, "ipfix-withdrawal-3-withdraw.bin");
  EXPECT_FALSE(has_error(w.result, fc::DecodeError::kWithdrawalIgnored));
  EXPECT_EQ(dec.template_count(), 0u);
  auto d = decode_file(dec, "ipfix-withdrawal-4-data.bin");
  EXPECT_EQ(d.result.records, 0u);
  // Over TCP, data for a withdrawn template is dropped, not held for a later definition (issue 10).
  EXPECT_EQ(d.result.pending, 0u);
  EXPECT_TRUE(has_error(d.result, fc::DecodeError::kWithdrawnTemplate));
  EXPECT_EQ(dec.pending_count(), 0u);
  // Withdraw-all after redefining.
  decode_file(dec, "ipfix-withdrawal-1-template.bin");
  EXPECT_EQ(dec.template_count(), 1u);
  decode_file(dec, "ipfix-withdrawal-all.bin");
  EXPECT_EQ(dec.template_count(), 0u);
}

TEST(CollectorMalformed, AllPayloadsPcapNoCrash) {
  fc::Decoder dec;
  fc::RecordBatch out;
  const auto grams = read_pcap_udp(kFixtures + "/malformed/all-payloads.pcap");
  EXPECT_EQ(grams.size(), 17u);
  for (const auto& g : grams) {
    dec.decode(g.payload, g.from, kNow, out);
    // Every prefix and every single-byte truncation must be safe too.
    for (std::size_t n = 0; n < g.payload.size(); ++n)
      dec.decode(std::span(g.payload.data(), n), g.from, kNow, out);
  }
  for (const auto& r : out) (void)fc::to_json(r).dump();
}

}  // namespace
