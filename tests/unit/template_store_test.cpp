// SPDX-License-Identifier: Apache-2.0
// The template store and held data (template_store.cpp): data before its template, expiry,
// the pending bound, resends and redefinitions, and the per-exporter state of silent exporters.
#include "collector/template_store.hpp"
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;

TEST(IpfixDecoder, DataBeforeTemplateHeldThenReleased) {
  fc::Decoder dec;
  fc::RecordBatch out;
  auto r1 = dec.decode(ipfix(0, 1, {{300, data300(2)}}), kExporter, kNow, out);
  EXPECT_EQ(r1.records, 0u);
  EXPECT_EQ(r1.pending, 1u);
  EXPECT_EQ(dec.pending_count(), 1u);
  auto r2 = dec.decode(ipfix(2, 1, {{2, tmpl300()}, {300, data300(1)}}), kExporter, kNow, out);
  EXPECT_EQ(r2.records, 3u);  // 1 from this message + 2 released
  EXPECT_EQ(dec.pending_count(), 0u);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(uint_of(out[1], 2), 1);
  EXPECT_EQ(uint_of(out[2], 2), 2);
  // Same message: data first, template after.
  fc::Decoder dec2;
  out.clear();
  auto r3 = dec2.decode(ipfix(0, 1, {{300, data300(1)}, {2, tmpl300()}}), kExporter, kNow, out);
  EXPECT_EQ(r3.records, 1u);
  EXPECT_EQ(out.size(), 1u);
  // A different ODID or exporter port does not see the template.
  out.clear();
  auto r4 = dec.decode(ipfix(0, 2, {{300, data300(1)}}), kExporter, kNow, out);
  EXPECT_EQ(r4.records, 0u);
  EXPECT_EQ(r4.pending, 1u);
  auto r5 = dec.decode(ipfix(0, 1, {{300, data300(1)}}), fc::Exporter{kExporter.address, 2056},
                       kNow, out);
  EXPECT_EQ(r5.pending, 1u);
}

TEST(IpfixDecoder, TemplateExpiry) {
  fc::DecoderLimits l;
  l.template_timeout = std::chrono::seconds{100};
  fc::Decoder dec(l);
  fc::RecordBatch out;
  dec.decode(ipfix(0, 1, {{2, tmpl300()}}), kExporter, kNow, out);
  EXPECT_EQ(dec.template_count(), 1u);
  dec.expire(kNow + std::chrono::seconds{50});
  EXPECT_EQ(dec.template_count(), 1u);
  dec.expire(kNow + std::chrono::seconds{101});
  EXPECT_EQ(dec.template_count(), 0u);
  auto r = dec.decode(ipfix(0, 1, {{300, data300(1)}}), kExporter, kNow + std::chrono::seconds{102},
                      out);
  EXPECT_EQ(r.records, 0u);
  EXPECT_EQ(r.pending, 1u);
  // Lazily too: a stale template is not used even without expire().
  fc::Decoder dec2(l);
  dec2.decode(ipfix(0, 1, {{2, tmpl300()}}), kExporter, kNow, out);
  auto r2 = dec2.decode(ipfix(0, 1, {{300, data300(1)}}), kExporter,
                        kNow + std::chrono::seconds{200}, out);
  EXPECT_EQ(r2.records, 0u);
  // Held data ages out.
  EXPECT_EQ(dec2.expire(kNow + std::chrono::seconds{200 + 61}), 1u);
  EXPECT_EQ(dec2.pending_count(), 0u);
}

TEST(IpfixDecoder, PendingOverflowCounted) {
  fc::DecoderLimits l;
  l.max_pending_records = 2;
  fc::Decoder dec(l);
  fc::RecordBatch out;
  dec.decode(ipfix(0, 1, {{300, data300(1)}}), kExporter, kNow, out);
  dec.decode(ipfix(1, 1, {{301, data300(1)}}), kExporter, kNow, out);
  auto r = dec.decode(ipfix(2, 1, {{302, data300(1)}}), kExporter, kNow, out);
  EXPECT_TRUE(has_error(r, fc::DecodeError::kPendingOverflow));
  EXPECT_EQ(dec.pending_count(), 2u);
  fc::DecoderLimits b;
  b.max_pending_bytes = 10;
  fc::Decoder dec2(b);
  auto r2 = dec2.decode(ipfix(0, 1, {{300, data300(1)}}), kExporter, kNow, out);
  EXPECT_TRUE(has_error(r2, fc::DecodeError::kPendingOverflow));
  EXPECT_EQ(dec2.pending_count(), 0u);
}

TEST(IpfixDecoder, ResentTemplateRefreshesAndRedefinitionWins) {
  // The same template bytes in every message only restart its lifetime; different bytes replace it,
  // also when the old bytes come back later in the same message (the last definition wins).
  fc::Decoder dec;
  fc::RecordBatch out;
  for (int i = 0; i < 3; ++i) {
    auto r =
        dec.decode(ipfix(static_cast<std::uint32_t>(i), 1, {{2, tmpl300()}, {300, data300(1)}}),
                   kExporter, kNow + std::chrono::seconds(1000 * i), out);
    EXPECT_EQ(r.templates, 1u);
    EXPECT_TRUE(r.errors.empty());
  }
  // 2000 s after the first definition but 1000 s after the last resend: still alive.
  dec.expire(kNow + std::chrono::seconds(3000));
  EXPECT_EQ(dec.template_count(), 1u);
  // 300 redefined with octetDeltaCount/8 instead of packetDeltaCount/4, then the old bytes again.
  auto other = Writer{}.u16(300).u16(3).u16(8).u16(4).u16(12).u16(4).u16(1).u16(8).b;
  out.clear();
  dec.decode(ipfix(3, 1, {{2, other}, {2, tmpl300()}, {300, data300(1)}}), kExporter,
             kNow + std::chrono::seconds(3000), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(uint_of(out[0], 2), 1);  // decoded with tmpl300 (packetDeltaCount)
  out.clear();
  dec.decode(ipfix(4, 1, {{300, data300(1)}}), kExporter, kNow + std::chrono::seconds(3001), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(uint_of(out[0], 2), 1) << "the stored template is the last one defined";
}

TEST(CollectorMemory, ObservationDomainsNamedByTheWireAreBounded) {
  // Any 32-bit domain id in any 16-byte header made a table entry that lived for template_timeout:
  // 300,000 headers took 65 MB. Past the bound a new domain is decoded without kept state.
  fc::Decoder dec;
  fc::RecordBatch out;
  for (std::uint32_t domain = 0; domain < 5000; ++domain)
    dec.decode(ipfix(0, domain, {}), kExporter, kNow, out);
  EXPECT_LE(dec.exporter_state_count(), 1024u);
  EXPECT_GE(dec.exporter_state_count(), 1000u) << "real domains are still tracked up to the bound";
}

TEST(CollectorMemory, DomainStateOfSilentExportersExpires) {
  // Exporters that restart with a new source port leave sequence state behind; it must expire.
  fc::Decoder dec;
  fc::RecordBatch out;
  for (std::uint16_t port = 1; port <= 500; ++port)
    dec.decode(ipfix(0, 1, {{2, tmpl300()}, {300, data300(1)}}),
               fc::Exporter{kExporter.address, port}, kNow, out);
  EXPECT_EQ(dec.template_count(), 500u);
  dec.expire(kNow + std::chrono::seconds(1801));
  EXPECT_EQ(dec.template_count(), 0u);
  EXPECT_EQ(dec.exporter_state_count(), 0u);
}

}  // namespace

// ---- TemplateStore alone ------------------------------------------------------------------------

namespace {

fc::TemplateKey key(std::uint16_t port, std::uint32_t domain, std::uint16_t id) {
  fc::TemplateKey k;
  k.exporter.family = 2;
  k.exporter.addr[0] = 192;
  k.exporter.port = port;
  k.version = 10;
  k.domain = domain;
  k.id = id;
  return k;
}

fc::Template with_fields(std::size_t n, bool options = false) {
  fc::Template t;
  t.fields.resize(n);
  t.options = options;
  return t;
}

TEST(TemplateStore, BoundPerExporterAndRedefinitionReplaces) {
  fc::DecoderLimits limits;
  limits.max_templates_per_exporter = 2;
  fc::TemplateStore store(limits);
  fc::DecodeResult r;
  EXPECT_TRUE(store.store(key(1, 0, 256), with_fields(1), kNow, r));
  EXPECT_TRUE(store.store(key(1, 0, 257), with_fields(1), kNow, r));
  EXPECT_FALSE(store.store(key(1, 0, 258), with_fields(1), kNow, r));  // a third: refused
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], fc::DecodeError::kTemplateLimit);
  EXPECT_TRUE(
      store.store(key(1, 0, 257), with_fields(3), kNow, r));  // a redefinition is not a new one
  ASSERT_NE(store.find(key(1, 0, 257), kNow), nullptr);
  EXPECT_EQ(store.find(key(1, 0, 257), kNow)->fields.size(), 3u);
  EXPECT_TRUE(
      store.store(key(2, 0, 258), with_fields(1), kNow, r));  // another exporter has its own bound
  store.erase(key(1, 0, 256));
  EXPECT_TRUE(store.store(key(1, 0, 258), with_fields(1), kNow, r));  // the erase freed a place
  EXPECT_EQ(store.size(), 3u);
}

TEST(TemplateStore, UdpLifetimeRefreshAndExpiry) {
  fc::DecoderLimits limits;
  limits.template_timeout = std::chrono::seconds(100);
  fc::TemplateStore store(limits);
  fc::DecodeResult r;
  store.store(key(1, 0, 256), with_fields(1), kNow, r);
  store.store(key(1, 0, 257), with_fields(1), kNow, r);
  EXPECT_TRUE(store.refresh(key(1, 0, 257), kNow + std::chrono::seconds(90)));
  EXPECT_FALSE(store.refresh(key(1, 0, 999), kNow));
  store.expire(kNow + std::chrono::seconds(150));
  EXPECT_EQ(store.size(), 1u);  // 256 outlived its 100 s, the refreshed 257 did not
  EXPECT_EQ(store.find(key(1, 0, 256), kNow + std::chrono::seconds(150)), nullptr);
  // find() also drops a template past its lifetime.
  EXPECT_EQ(store.find(key(1, 0, 257), kNow + std::chrono::seconds(191)), nullptr);
  EXPECT_EQ(store.size(), 0u);
  // Over TCP nothing expires.
  limits.udp = false;
  fc::TemplateStore tcp(limits);
  tcp.store(key(1, 0, 256), with_fields(1), kNow, r);
  tcp.expire(kNow + std::chrono::hours(24));
  EXPECT_NE(tcp.find(key(1, 0, 256), kNow + std::chrono::hours(24)), nullptr);
}

TEST(TemplateStore, EraseKindAndForget) {
  fc::TemplateStore store;
  fc::DecodeResult r;
  store.store(key(1, 7, 256), with_fields(1), kNow, r);
  store.store(key(1, 7, 257), with_fields(1, true), kNow, r);
  store.store(key(1, 8, 258), with_fields(1), kNow, r);  // another domain
  auto gone = store.erase_kind(key(1, 7, 0).exporter, 10, 7, false);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].id, 256);
  EXPECT_EQ(store.size(), 2u);
  store.store(key(2, 7, 256), with_fields(1), kNow, r);
  store.forget(key(1, 0, 0).exporter, key(0, 0, 0).exporter);
  EXPECT_EQ(store.size(), 1u);  // only exporter port 2's
  EXPECT_NE(store.find(key(2, 7, 256), kNow), nullptr);
}

}  // namespace
