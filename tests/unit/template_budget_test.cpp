// SPDX-License-Identifier: Apache-2.0
// The template byte bounds (template_budget.cpp, template_store.cpp): per exporter address across
// its ports and the stores that share a budget, in total, the eviction order, refusals and the
// counts they leave in the DecodeResult; and the held-data bound per exporter address.
#include "collector/template_budget.hpp"

#include <sys/socket.h>

#include <memory>

#include "collector/template_store.hpp"
#include "collector_test_support.hpp"

namespace {

using namespace collector_test;
using fc::TemplateEviction;
using fc::TemplateRefusal;

fc::TemplateKey key(std::uint8_t address, std::uint16_t port, std::uint16_t id) {
  fc::TemplateKey k;
  k.exporter.family = AF_INET;
  k.exporter.addr = {192, 0, 2, address};
  k.exporter.port = port;
  k.version = 10;
  k.id = id;
  return k;
}

IpAddress address(std::uint8_t a) {
  return IpAddress::v4(0xC0000200u | a);
}

fc::Template with_fields(std::size_t n) {
  fc::Template t;
  t.fields.resize(n);
  t.raw.resize(4 + 4 * n);  // as an IPFIX template record of n plain fields arrives
  return t;
}

// The cost of one with_fields(kFields) template; bounds in the tests are multiples of it.
constexpr std::size_t kFields = 1000;
const std::size_t kOne = fc::template_bytes(with_fields(kFields));

std::uint32_t evicted(const fc::DecodeResult& r, TemplateEviction e) {
  return r.templates_evicted[static_cast<std::size_t>(e)];
}
std::uint32_t refused(const fc::DecodeResult& r, TemplateRefusal e) {
  return r.templates_refused[static_cast<std::size_t>(e)];
}

fc::DecoderLimits sharing(std::size_t per_exporter, std::size_t total) {
  fc::DecoderLimits l;
  l.budget = std::make_shared<fc::TemplateBudget>(fc::TemplateBounds{per_exporter, total});
  return l;
}

TEST(TemplateBudget, BytesCountFieldsRawRecordAndOverhead) {
  // 16,000 fields (the templates): 12 bytes per field specifier and 64 KB of raw record.
  const std::size_t big = fc::template_bytes(with_fields(16000));
  EXPECT_GE(big, 16000 * sizeof(fc::FieldSpec) + 4 + 4 * 16000);
  EXPECT_EQ(sizeof(fc::FieldSpec), 12u);
  // An empty template still costs its node, its Template and the ledger's entries.
  const std::size_t empty = fc::template_bytes(fc::Template{});
  EXPECT_GT(empty, sizeof(fc::Template));
  EXPECT_LT(empty, 1024u);
  EXPECT_EQ(big - empty, 16000 * sizeof(fc::FieldSpec) + 4 + 4 * 16000);
}

TEST(TemplateBudget, PerExporterBoundCoversEveryPortAndStore) {
  // Two stores share one budget, as two receive workers or a worker and a TCP session do.
  const auto limits = sharing(3 * kOne, 100 * kOne);
  fc::TemplateStore a(limits), b(limits);
  fc::DecodeResult r;
  EXPECT_TRUE(a.store(key(1, 1001, 256), with_fields(kFields), kNow, r));
  EXPECT_TRUE(b.store(key(1, 1002, 256), with_fields(kFields), kNow, r));
  EXPECT_TRUE(a.store(key(1, 1003, 256), with_fields(kFields), kNow, r));
  EXPECT_EQ(limits.budget->exporter_bytes(address(1)), 3 * kOne);
  // Another address has a bound of its own.
  EXPECT_TRUE(b.store(key(2, 1001, 256), with_fields(kFields), kNow, r));
  EXPECT_EQ(evicted(r, TemplateEviction::kExporterBytes), 0u);
  // A fourth port of address 1: its oldest template (port 1001, in store a) makes room.
  EXPECT_TRUE(b.store(key(1, 1004, 256), with_fields(kFields), kNow, r));
  EXPECT_EQ(evicted(r, TemplateEviction::kExporterBytes), 1u);
  EXPECT_EQ(evicted(r, TemplateEviction::kTotalBytes), 0u);
  EXPECT_EQ(r.evicted_from, address(1));
  EXPECT_EQ(limits.budget->exporter_bytes(address(1)), 3 * kOne);
  EXPECT_EQ(limits.budget->exporter_bytes(address(2)), kOne);
  EXPECT_EQ(limits.budget->bytes(), 4 * kOne);
  // Store a erases what b's charge evicted at its next expire() (its worker's tick).
  EXPECT_NE(a.find(key(1, 1001, 256), kNow), nullptr);
  a.expire(kNow);
  EXPECT_EQ(a.find(key(1, 1001, 256), kNow), nullptr);
  EXPECT_NE(a.find(key(1, 1003, 256), kNow), nullptr);
  EXPECT_EQ(a.size() + b.size(), limits.budget->count());
  // Over and over: the address never holds more than its bound.
  for (std::uint16_t port = 2000; port < 2020; ++port) {
    fc::DecodeResult more;
    EXPECT_TRUE((port % 2 ? a : b).store(key(1, port, 300), with_fields(kFields), kNow, more));
    EXPECT_EQ(evicted(more, TemplateEviction::kExporterBytes), 1u);
    EXPECT_LE(limits.budget->exporter_bytes(address(1)), 3 * kOne);
  }
  a.expire(kNow);
  b.expire(kNow);
  EXPECT_EQ(a.size() + b.size(), 4u);
  EXPECT_NE(b.find(key(2, 1001, 256), kNow), nullptr);  // the other address kept its template
}

TEST(TemplateBudget, TotalBoundEvictsTheOldestOfAnyExporter) {
  const auto limits = sharing(2 * kOne, 3 * kOne);
  fc::TemplateStore store(limits);
  fc::DecodeResult r;
  for (std::uint8_t a = 1; a <= 3; ++a)
    EXPECT_TRUE(store.store(key(a, 2055, 256), with_fields(kFields), kNow, r));
  EXPECT_EQ(evicted(r, TemplateEviction::kTotalBytes), 0u);
  EXPECT_TRUE(store.store(key(4, 2055, 256), with_fields(kFields), kNow, r));
  EXPECT_EQ(evicted(r, TemplateEviction::kTotalBytes), 1u);
  EXPECT_EQ(r.evicted_from, address(1));
  EXPECT_EQ(store.find(key(1, 2055, 256), kNow), nullptr);  // the charging store erases at once
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(limits.budget->bytes(), 3 * kOne);
  // A second template of exporter 2 stays within its exporter's bound but not within the total:
  // the oldest of all goes, here exporter 2's own first template.
  fc::DecodeResult r2;
  EXPECT_TRUE(store.store(key(2, 2055, 257), with_fields(kFields), kNow, r2));
  EXPECT_EQ(evicted(r2, TemplateEviction::kTotalBytes), 1u);
  EXPECT_EQ(store.find(key(2, 2055, 256), kNow), nullptr);
  EXPECT_NE(store.find(key(3, 2055, 256), kNow), nullptr);
  // A total below the per-exporter bound is raised to it.
  fc::TemplateBudget odd(fc::TemplateBounds{5 * kOne, kOne});
  EXPECT_EQ(odd.bounds().total, 5 * kOne);
}

TEST(TemplateBudget, LeastRecentlyDefinedOrRefreshedGoesFirst) {
  const auto limits = sharing(3 * kOne, 100 * kOne);
  fc::TemplateStore store(limits);
  fc::DecodeResult r;
  for (std::uint16_t id = 256; id < 259; ++id)
    store.store(key(1, 2055, id), with_fields(kFields), kNow, r);
  // 256 is refreshed (an unchanged resend), 257 redefined: 258 is now the oldest.
  EXPECT_TRUE(store.refresh(key(1, 2055, 256), kNow));
  EXPECT_TRUE(store.store(key(1, 2055, 257), with_fields(kFields), kNow, r));
  EXPECT_EQ(evicted(r, TemplateEviction::kExporterBytes), 0u);  // a redefinition replaces
  EXPECT_TRUE(store.store(key(1, 2055, 259), with_fields(kFields), kNow, r));
  EXPECT_EQ(evicted(r, TemplateEviction::kExporterBytes), 1u);
  EXPECT_EQ(store.find(key(1, 2055, 258), kNow), nullptr);
  EXPECT_NE(store.find(key(1, 2055, 256), kNow), nullptr);
  EXPECT_NE(store.find(key(1, 2055, 257), kNow), nullptr);
  // Then 256, the next oldest; a bigger template evicts as many as it needs.
  fc::DecodeResult r2;
  EXPECT_TRUE(store.store(key(1, 2055, 260), with_fields(2 * kFields), kNow, r2));
  EXPECT_EQ(evicted(r2, TemplateEviction::kExporterBytes), 2u);
  EXPECT_EQ(store.find(key(1, 2055, 256), kNow), nullptr);
  EXPECT_EQ(store.find(key(1, 2055, 257), kNow), nullptr);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_LE(limits.budget->exporter_bytes(address(1)), 3 * kOne);
}

TEST(TemplateBudget, ATemplateLargerThanTheExporterBoundIsRefused) {
  const auto limits = sharing(2 * kOne, 10 * kOne);
  fc::TemplateStore store(limits);
  fc::DecodeResult r;
  EXPECT_TRUE(store.store(key(1, 2055, 256), with_fields(kFields), kNow, r));
  EXPECT_TRUE(store.store(key(1, 2055, 257), with_fields(kFields), kNow, r));
  EXPECT_FALSE(store.store(key(1, 2055, 258), with_fields(3 * kFields), kNow, r));
  EXPECT_EQ(refused(r, TemplateRefusal::kTooLarge), 1u);
  EXPECT_TRUE(has_error(r, fc::DecodeError::kTemplateLimit));
  EXPECT_EQ(evicted(r, TemplateEviction::kExporterBytes), 0u);  // nothing made room in vain
  EXPECT_EQ(store.size(), 2u);
  // A redefinition that is too large leaves no stale layout behind.
  EXPECT_FALSE(store.store(key(1, 2055, 256), with_fields(3 * kFields), kNow, r));
  EXPECT_EQ(refused(r, TemplateRefusal::kTooLarge), 2u);
  EXPECT_EQ(store.find(key(1, 2055, 256), kNow), nullptr);
  EXPECT_EQ(limits.budget->bytes(), kOne);
  EXPECT_EQ(store.size(), 1u);
}

TEST(TemplateBudget, CountBoundIsARefusalToo) {
  auto limits = sharing(100 * kOne, 100 * kOne);
  limits.max_templates_per_exporter = 1;
  fc::TemplateStore store(limits);
  fc::DecodeResult r;
  EXPECT_TRUE(store.store(key(1, 2055, 256), with_fields(1), kNow, r));
  EXPECT_FALSE(store.store(key(1, 2055, 257), with_fields(1), kNow, r));
  EXPECT_EQ(refused(r, TemplateRefusal::kMaxTemplates), 1u);
  EXPECT_EQ(refused(r, TemplateRefusal::kTooLarge), 0u);
  EXPECT_EQ(limits.budget->count(), 1u);
}

TEST(TemplateBudget, ErasedExpiredForgottenAndDestroyedTemplatesAreReleased) {
  auto limits = sharing(100 * kOne, 100 * kOne);
  limits.template_timeout = std::chrono::seconds(100);
  {
    fc::TemplateStore store(limits);
    fc::DecodeResult r;
    store.store(key(1, 2055, 256), with_fields(kFields), kNow, r);
    store.store(key(1, 2055, 257), with_fields(kFields), kNow + std::chrono::seconds(60), r);
    store.store(key(2, 2055, 256), with_fields(kFields), kNow + std::chrono::seconds(60), r);
    store.store(key(3, 2055, 256), with_fields(kFields), kNow + std::chrono::seconds(60), r);
    store.store(key(4, 2055, 256), with_fields(kFields), kNow + std::chrono::seconds(60), r);
    EXPECT_EQ(limits.budget->bytes(), 5 * kOne);
    store.erase(key(1, 2055, 257));
    EXPECT_EQ(limits.budget->bytes(), 4 * kOne);
    store.expire(kNow + std::chrono::seconds(150));  // key(1, 256) outlived its 100 s
    EXPECT_EQ(limits.budget->bytes(), 3 * kOne);
    EXPECT_EQ(limits.budget->exporter_bytes(address(1)), 0u);
    store.forget(key(2, 2055, 0).exporter, key(2, 0, 0).exporter);
    EXPECT_EQ(limits.budget->bytes(), 2 * kOne);
    fc::TemplateStore moved(std::move(store));
    EXPECT_EQ(limits.budget->bytes(), 2 * kOne);
  }
  EXPECT_EQ(limits.budget->bytes(), 0u);
  EXPECT_EQ(limits.budget->count(), 0u);
}

TEST(TemplateBudget, DecodersSharingABudgetStayWithinItOverTheWire) {
  // Large IPFIX templates from many source ports of one address, decoded by two decoders: the
  // address never holds more than its bound, and templates of other addresses survive.
  fc::DecoderLimits limits = sharing(1 << 20, 2 << 20);
  fc::Decoder d1(limits), d2(limits);
  fc::RecordBatch out;
  auto big = [](std::uint16_t id) {
    Writer w;
    w.u16(id).u16(8000);
    for (int i = 0; i < 8000; ++i) w.u16(210).u16(4);  // paddingOctets
    return w.b;
  };
  fc::Decoder& other = d2;
  other.decode(ipfix(0, 1, {{2, tmpl300()}}), fc::Exporter{address(9), 2055}, kNow, out);
  std::uint32_t evictions = 0;
  for (std::uint16_t port = 10000; port < 10040; ++port) {
    auto r = (port % 2 ? d1 : d2)
                 .decode(ipfix(0, 1, {{2, big(256)}}), fc::Exporter{address(1), port}, kNow, out);
    EXPECT_EQ(r.templates, 1u);
    evictions += r.templates_evicted[0];
    EXPECT_LE(limits.budget->exporter_bytes(address(1)), std::size_t{1} << 20);
    EXPECT_LE(limits.budget->bytes(), std::size_t{2} << 20);
  }
  EXPECT_GT(evictions, 20u);
  d1.expire(kNow);
  d2.expire(kNow);
  EXPECT_LE(d1.template_count() + d2.template_count(), 1 + (1u << 20) / (8000 * 16));
  auto r =
      other.decode(ipfix(1, 1, {{300, data300(1)}}), fc::Exporter{address(9), 2055}, kNow, out);
  EXPECT_EQ(r.records, 1u);
}

TEST(HeldDataBound, OneAddressMakesRoomFromItsOwnOldestSetsFirst) {
  // Each held set is 12 bytes (one data300 record); an address may hold two, the decoder ten.
  fc::DecoderLimits l;
  l.max_pending_bytes_per_exporter = 24;
  l.max_pending_bytes = 120;
  fc::Decoder dec(l);
  fc::RecordBatch out;
  dec.decode(ipfix(0, 1, {{300, data300(1)}}), fc::Exporter{address(9), 2055}, kNow, out);
  std::size_t overflows = 0;
  for (std::uint16_t port = 3000; port < 3010; ++port) {
    auto r =
        dec.decode(ipfix(0, 1, {{300, data300(1)}}), fc::Exporter{address(1), port}, kNow, out);
    EXPECT_EQ(r.pending, 1u);
    for (auto e : r.errors) overflows += e == fc::DecodeError::kPendingOverflow;
  }
  EXPECT_EQ(overflows, 8u);  // address 1's eight oldest sets, never address 9's
  EXPECT_EQ(dec.pending_count(), 3u);
  EXPECT_EQ(dec.pending_bytes(), 36u);
  // Address 9's set is still there for its template; address 1's last two for theirs.
  auto r9 = dec.decode(ipfix(1, 1, {{2, tmpl300()}}), fc::Exporter{address(9), 2055}, kNow, out);
  EXPECT_EQ(r9.records, 1u);
  auto r1 = dec.decode(ipfix(1, 1, {{2, tmpl300()}}), fc::Exporter{address(1), 3009}, kNow, out);
  EXPECT_EQ(r1.records, 1u);
  EXPECT_EQ(dec.pending_count(), 1u);
  EXPECT_EQ(dec.pending_bytes(), 12u);
  // A set larger than an address may hold is refused outright.
  auto big =
      dec.decode(ipfix(0, 1, {{300, data300(3)}}), fc::Exporter{address(2), 2055}, kNow, out);
  EXPECT_EQ(big.pending, 0u);
  EXPECT_TRUE(has_error(big, fc::DecodeError::kPendingOverflow));
  // Aged out, the bytes are released too.
  EXPECT_EQ(dec.expire(kNow + std::chrono::seconds(61)), 1u);
  EXPECT_EQ(dec.pending_bytes(), 0u);
}

}  // namespace
