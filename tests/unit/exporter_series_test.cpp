// SPDX-License-Identifier: Apache-2.0
// Per-exporter series (issue 16 §2): the keys read from NetFlow v9/IPFIX and sFlow headers, the
// cap with its "other" series, the workers' cache, and a reload that finds the series named before.
#include "plugins/netflow/exporter_series.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

namespace flowd::netflow {
namespace {

std::vector<std::uint8_t> bytes(std::initializer_list<int> b) {
  std::vector<std::uint8_t> out;
  for (int x : b) out.push_back(static_cast<std::uint8_t>(x));
  return out;
}

IpAddress addr(const char* text) {
  return *IpAddress::parse(text);
}

// The value of the sample of `name` whose labels include every pair of `want`; -1 when none.
double value(prometheus::Registry& r, const std::string& name,
             const std::map<std::string, std::string>& want) {
  for (const auto& f : r.Collect()) {
    if (f.name != name) continue;
    for (const auto& m : f.metric) {
      std::size_t matched = 0;
      for (const auto& l : m.label)
        if (auto it = want.find(l.name); it != want.end() && it->second == l.value) ++matched;
      if (matched == want.size()) return m.counter.value;
    }
  }
  return -1;
}

TEST(ExporterSeriesKey, NetflowV9AndIpfixCarryTheirDomainOthersTheAddressAlone) {
  const IpAddress sender = addr("192.0.2.7");
  // v9: version, count, sysUptime, unix secs, sequence, source id 0x01020304.
  auto v9 = bytes({0, 9, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4});
  auto k = netflow_series_key(v9, sender);
  EXPECT_TRUE(k.has_domain);
  EXPECT_EQ(k.domain, 0x01020304u);
  EXPECT_EQ(k.address, sender);
  // IPFIX: version, length, export time, sequence, observation domain 7.
  auto v10 = bytes({0, 10, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7});
  k = netflow_series_key(v10, sender);
  EXPECT_TRUE(k.has_domain);
  EXPECT_EQ(k.domain, 7u);
  // v5 has no domain; a v9 header cut short and junk neither.
  EXPECT_FALSE(netflow_series_key(bytes({0, 5, 0, 1, 0, 0, 0, 0}), sender).has_domain);
  EXPECT_FALSE(netflow_series_key(std::span(v9).first(19), sender).has_domain);
  EXPECT_FALSE(netflow_series_key(bytes({0}), sender).has_domain);
}

TEST(ExporterSeriesKey, SflowIsTheAgentAddressAndSubAgentNotTheSender) {
  const IpAddress sender = addr("192.0.2.7");
  // version 5, IPv4 agent 198.51.100.1, sub-agent 3.
  auto v4 = bytes({0, 0, 0, 5, 0, 0, 0, 1, 198, 51, 100, 1, 0, 0, 0, 3});
  auto k = sflow_series_key(v4, sender);
  EXPECT_EQ(k.address, addr("198.51.100.1"));
  EXPECT_TRUE(k.has_domain);
  EXPECT_EQ(k.domain, 3u);
  auto v6 = bytes({0, 0, 0, 5, 0, 0, 0, 2, 0x20, 0x01, 0x0d, 0xb8, 0, 0,
                   0, 0, 0, 0, 0, 0, 0, 0, 0,    1,    0,    0,    0, 9});
  k = sflow_series_key(v6, sender);
  EXPECT_EQ(k.address, addr("2001:db8::1"));
  EXPECT_EQ(k.domain, 9u);
  // Not version 5, an unknown address type, a header cut short: the sender alone.
  for (const auto& junk : {bytes({0, 0, 0, 4, 0, 0, 0, 1, 198, 51, 100, 1, 0, 0, 0, 3}),
                           bytes({0, 0, 0, 5, 0, 0, 0, 3, 198, 51, 100, 1, 0, 0, 0, 3}),
                           bytes({0, 0, 0, 5, 0, 0, 0, 1, 198, 51, 100, 1, 0, 0})}) {
    k = sflow_series_key(junk, sender);
    EXPECT_EQ(k.address, sender);
    EXPECT_FALSE(k.has_domain);
  }
}

TEST(ExporterSeries, BeyondTheCapExportersAreCountedUnderOther) {
  prometheus::Registry r;
  ExporterSeries s(r, Wire::kNetflow, 2);
  const SeriesKey a{addr("127.0.0.2"), 256, true}, b{addr("2001:db8::1"), 0, true},
      c{addr("127.0.0.4"), 256, true}, d{addr("127.0.0.2"), 0, false};
  auto fa = s.find(a), fb = s.find(b), fc = s.find(c), fd = s.find(d);
  EXPECT_FALSE(fa.folded);
  EXPECT_FALSE(fb.folded);
  EXPECT_TRUE(fc.folded);
  EXPECT_TRUE(fc.newly_folded);
  EXPECT_TRUE(fd.folded) << "another domain of a named address is another series";
  EXPECT_EQ(fc.counters, &s.other());
  EXPECT_EQ(s.find(a).counters, fa.counters);
  s.packets(*fa.counters, version_slot(10)).Increment(3);
  s.packets(*fb.counters, version_slot(9)).Increment(2);
  s.packets(*fc.counters, version_slot(10)).Increment(5);
  s.error(*fa.counters, version_slot(10),
          static_cast<std::size_t>(collector::DecodeError::kBadRecord))
      .Increment();
  EXPECT_EQ(value(r, "flowd_netflow_packets_total",
                  {{"exporter", "127.0.0.2"}, {"observation_domain", "256"}, {"version", "10"}}),
            3);
  EXPECT_EQ(value(r, "flowd_netflow_packets_total",
                  {{"exporter", "2001:db8::1"}, {"observation_domain", "0"}, {"version", "9"}}),
            2);
  EXPECT_EQ(value(r, "flowd_netflow_packets_total",
                  {{"exporter", "other"}, {"observation_domain", ""}, {"version", "10"}}),
            5);
  EXPECT_EQ(value(r, "flowd_netflow_decode_errors_total",
                  {{"exporter", "127.0.0.2"}, {"reason", "bad_record"}, {"version", "10"}}),
            1);
  // "other" has its series from the start: every version, and the losses.
  EXPECT_EQ(value(r, "flowd_netflow_packets_total", {{"exporter", "other"}, {"version", "1"}}), 0);
  EXPECT_EQ(value(r, "flowd_netflow_sequence_lost_total", {{"exporter", "other"}}), 0);
  EXPECT_EQ(s.counted_under(a).at("exporter"), "127.0.0.2");
  EXPECT_EQ(s.counted_under(c).at("exporter"), "other");
}

TEST(ExporterSeries, CapZeroPutsEveryAgentUnderOther) {
  prometheus::Registry r;
  ExporterSeries s(r, Wire::kSflow, 0);
  const auto f = s.find({addr("198.51.100.1"), 0, true});
  EXPECT_TRUE(f.folded);
  s.packets(*f.counters, 0).Increment();
  s.count_folded();
  EXPECT_EQ(value(r, "flowd_sflow_datagrams_total", {{"agent", "other"}, {"sub_agent", ""}}), 1);
  EXPECT_EQ(value(r, "flowd_sflow_agents_folded_total", {}), 1);
}

TEST(ExporterSeries, AReloadKeepsTheExportersNamedBeforeAndTheCap) {
  prometheus::Registry r;
  const SeriesKey a{addr("127.0.0.2"), 1, true}, b{addr("127.0.0.3"), 1, true},
      c{addr("127.0.0.4"), 1, true};
  {
    ExporterSeries before(r, Wire::kNetflow, 2);
    before.packets(*before.find(a).counters, version_slot(10)).Increment(4);
    before.packets(*before.find(b).counters, version_slot(10)).Increment(1);
    EXPECT_TRUE(before.find(c).folded);
  }
  ExporterSeries after(r, Wire::kNetflow, 2);
  // c comes first after the reload, and still finds the cap reached by a and b.
  EXPECT_TRUE(after.find(c).folded);
  auto fa = after.find(a);
  ASSERT_FALSE(fa.folded);
  after.packets(*fa.counters, version_slot(10)).Increment();
  EXPECT_EQ(value(r, "flowd_netflow_packets_total",
                  {{"exporter", "127.0.0.2"}, {"observation_domain", "1"}, {"version", "10"}}),
            5);
  EXPECT_FALSE(after.find(b).folded);
}

TEST(ExporterCache, HandsOutTheSeriesCountersAndReportsEachNewFoldOnce) {
  prometheus::Registry r;
  ExporterSeries s(r, Wire::kNetflow, 1);
  ExporterCache cache(s);
  const SeriesKey a{addr("127.0.0.2"), 0, false}, b{addr("127.0.0.3"), 0, false};
  bool folded = true;
  ExporterCounters* ca = &cache.get(a, folded);
  EXPECT_FALSE(folded);
  EXPECT_EQ(&cache.get(b, folded), &s.other());
  EXPECT_TRUE(folded);
  EXPECT_EQ(&cache.get(b, folded), &s.other());
  EXPECT_FALSE(folded) << "cached: the shared series are not asked again";
  EXPECT_EQ(&cache.get(a, folded), ca);
  // A flood of distinct senders: the cache starts again past its bound, the counters stay.
  for (std::uint32_t i = 0; i < ExporterCache::kMaxEntries + 10; ++i)
    cache.get({IpAddress::v4(0xC6120000u + i), 0, false}, folded);
  EXPECT_EQ(&cache.get(a, folded), ca);
}

}  // namespace
}  // namespace flowd::netflow
