// SPDX-License-Identifier: Apache-2.0
// flowd analyze output: ordering in a bounded buffer (ConnectionOrder), names (services(5),
// registry, reverse DNS on loopback only) and the JSON and table forms.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analyze/connection_format.hpp"
#include "analyze/connection_order.hpp"
#include "analyze/reverse_dns.hpp"
#include "analyze/service_names.hpp"
#include "core/registry_loader.hpp"
#include "flowd/rfc3339.hpp"
#include "flowd/scitags_label.hpp"

namespace flowd::analyze {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{std::chrono::seconds{1795356761}};

IpAddress ip(std::string_view s) {
  return *IpAddress::parse(s);
}

Connection conn(std::uint16_t sport, std::uint16_t dport, std::uint64_t octets, TimePoint start,
                std::string_view src = "192.0.2.1", std::string_view dst = "192.0.2.2") {
  Connection c;
  c.protocol = 6;
  c.source = ip(src);
  c.destination = ip(dst);
  c.source_port = sport;
  c.destination_port = dport;
  c.octets = octets;
  c.reverse_octets = octets / 10;
  c.packets = 3;
  c.reverse_packets = 2;
  c.start = start;
  c.end = start + 1500ms;
  c.pairing = Pairing::kMatched;
  c.records = 2;
  return c;
}

std::vector<Connection> run(SortKey key, std::size_t capacity, std::vector<Connection> in,
                            OrderCounters* counters = nullptr) {
  std::vector<Connection> out;
  ConnectionOrder order(key, capacity, [&](std::vector<Connection>& chunk) {
    out.insert(out.end(), chunk.begin(), chunk.end());
  });
  for (auto& c : in) order.add(std::move(c));
  order.finish();
  if (counters) *counters = order.counters();
  return out;
}

bool services_has(std::string_view name) {
  std::ifstream in("/etc/services");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name, 0) == 0) return true;
  return false;
}

TEST(AnalyzeOrder, StartOrderWhenEverythingFits) {
  auto out = run(SortKey::kStart, 100,
                 {conn(3, 80, 1, kT0 + 3s), conn(1, 80, 1, kT0 + 1s), conn(2, 80, 1, kT0 + 2s)});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].source_port, 1);
  EXPECT_EQ(out[1].source_port, 2);
  EXPECT_EQ(out[2].source_port, 3);
}

TEST(AnalyzeOrder, SmallBufferWritesEarlyAndCountsLateOnes) {
  OrderCounters n;
  auto out = run(SortKey::kStart, 2,
                 {conn(5, 80, 1, kT0 + 5s), conn(4, 80, 1, kT0 + 4s), conn(6, 80, 1, kT0 + 6s),
                  conn(1, 80, 1, kT0 + 1s), conn(7, 80, 1, kT0 + 7s)},
                 &n);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].source_port, 4);
  EXPECT_EQ(out[1].source_port, 1);  // came after 4 was written: out of order, counted
  EXPECT_EQ(n.late, 1u);
  EXPECT_EQ(n.written, 5u);
}

TEST(AnalyzeOrder, BytesKeepsTheLargestFirst) {
  OrderCounters n;
  auto out = run(SortKey::kBytes, 3,
                 {conn(1, 80, 10, kT0), conn(2, 80, 500, kT0), conn(3, 80, 30, kT0),
                  conn(4, 80, 7000, kT0), conn(5, 80, 1, kT0)},
                 &n);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].source_port, 4);
  EXPECT_EQ(out[1].source_port, 2);
  EXPECT_EQ(out[2].source_port, 3);
  EXPECT_EQ(n.dropped, 2u);
}

TEST(AnalyzeOrder, NoneKeepsClosingOrder) {
  auto out = run(SortKey::kNone, 1, {conn(2, 80, 1, kT0 + 2s), conn(1, 80, 1, kT0 + 1s)});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].source_port, 2);
}

TEST(AnalyzeServices, WellKnownSideIsPicked) {
  if (!services_has("ssh\t") && !services_has("ssh "))
    GTEST_SKIP() << "/etc/services has no ssh (netbase not installed)";
  ServiceNames s;
  ASSERT_NE(s.port_name(22, 6), nullptr);
  EXPECT_EQ(*s.port_name(22, 6), "ssh");
  EXPECT_EQ(s.port_name(22, 1), nullptr);  // ICMP has no ports
  // Reply direction as the source: the service is still ssh.
  Service svc = s.service(conn(22, 40000, 1, kT0));
  EXPECT_EQ(svc.name, "ssh");
  EXPECT_EQ(svc.port, 22);
  // Neither named: the lower port, no name.
  svc = s.service(conn(40010, 45201, 1, kT0));
  EXPECT_TRUE(svc.name.empty());
  EXPECT_EQ(svc.port, 40010);
  EXPECT_TRUE(svc.has_port);
  Connection icmp = conn(0, 0, 1, kT0);
  icmp.protocol = 1;
  EXPECT_FALSE(s.service(icmp).has_port);
  EXPECT_EQ(s.protocol_name(1), "icmp");
  EXPECT_EQ(s.protocol_name(253), "253");
}

TEST(AnalyzeFormat, JsonHasTheDocumentedKeysAndParsesBack) {
  std::string err;
  auto reg = ScitagsRegistry::parse(registry_snapshot_json(), err);
  ASSERT_TRUE(reg) << err;
  ConnectionNamer namer(reg, nullptr);
  Connection c = conn(40011, 5202, 205000, kT0, "2001:db8::1", "2001:db8::2");
  c.flow_label = make_label(2, 9, 0x3);  // atlas / Debug
  c.time_source = TimeSource::kReceived;
  std::string text;
  append_connection_json(c, namer.names(c), text);
  auto j = nlohmann::ordered_json::parse(text);
  auto back = nlohmann::json::parse(text);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"start",
                                            "end",
                                            "duration",
                                            "time_source",
                                            "protocol",
                                            "protocol_name",
                                            "source_address",
                                            "source_port",
                                            "destination_address",
                                            "destination_port",
                                            "service",
                                            "service_port",
                                            "octets",
                                            "packets",
                                            "reverse_octets",
                                            "reverse_packets",
                                            "pairing",
                                            "records",
                                            "evicted",
                                            "flow_label",
                                            "experiment_id",
                                            "activity_id",
                                            "experiment",
                                            "activity"}));
  EXPECT_EQ(parse_rfc3339(back["start"].get<std::string>()), kT0);
  EXPECT_EQ(parse_rfc3339(back["end"].get<std::string>()), kT0 + 1500ms);
  EXPECT_DOUBLE_EQ(back["duration"].get<double>(), 1.5);
  EXPECT_EQ(back["time_source"], "received");
  EXPECT_EQ(back["source_address"], "2001:db8::1");
  EXPECT_EQ(back["octets"], 205000);
  EXPECT_EQ(back["reverse_octets"], 20500);
  EXPECT_EQ(back["pairing"], "matched");
  EXPECT_EQ(back["experiment_id"], 2);
  EXPECT_EQ(back["activity_id"], 9);
  EXPECT_EQ(back["experiment"], "atlas");
  EXPECT_EQ(back["activity"], "Debug");

  // A label whose pair the registry does not list: ids, but no names.
  auto json_of = [&](const Connection& x, const ConnectionNames& names) {
    std::string t;
    append_connection_json(x, names, t);
    return nlohmann::json::parse(t);
  };
  c.flow_label = make_label(500, 60, 0);
  back = json_of(c, namer.names(c));
  EXPECT_EQ(back["experiment_id"], 500);
  EXPECT_TRUE(back["experiment"].is_null());
  // No label: all null.
  c.flow_label = 0;
  back = json_of(c, namer.names(c));
  EXPECT_TRUE(back["flow_label"].is_null());
  EXPECT_TRUE(back["experiment_id"].is_null());
  EXPECT_FALSE(back.contains("source_name")) << "names only with --resolve";
}

TEST(AnalyzeFormat, JsonStringsAreEscaped) {
  ConnectionNames n;
  n.resolved = true;
  n.source_name = std::string("odd\"name\\with\x01control");
  n.protocol = "tcp";
  std::string text;
  append_connection_json(conn(1, 2, 3, kT0), n, text);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["source_name"], "odd\"name\\with\x01control");
  EXPECT_TRUE(j["destination_name"].is_null());
}

TEST(AnalyzeFormat, TableCells) {
  ConnectionNamer namer(nullptr, nullptr);
  Connection c = conn(40011, 5202, 205000, kT0 + 904ms, "2001:db8::1", "2001:db8::2");
  auto cells = table_cells(c, namer.names(c));
  ASSERT_EQ(cells.size(), table_header().size());
  EXPECT_EQ(cells[0], "2026-11-22 14:12:41.904");
  EXPECT_EQ(cells[1], "1.500");
  EXPECT_EQ(cells[4], "[2001:db8::1]:40011");
  EXPECT_EQ(cells[6], "205000");
  EXPECT_EQ(cells[10], "matched");
  EXPECT_EQ(cells[12], "-");
}

TEST(AnalyzeFormat, WriterAlignsColumns) {
  ConnectionNamer namer(nullptr, nullptr);
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* mem = open_memstream(&buf, &len);
  ASSERT_NE(mem, nullptr);
  ConnectionWriter w(mem, false, namer);
  w.write(
      {conn(40001, 7000, 5, kT0), conn(40002, 7001, 123456789, kT0, "2001:db8::1", "2001:db8::2")});
  std::fclose(mem);
  std::string text(buf, len);
  std::free(buf);
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(text.substr(at, nl - at));
  ASSERT_EQ(lines.size(), 3u) << text;
  // The BYTES< column ends at the same offset on every line.
  const auto col = lines[0].find("BYTES<") + 6;
  EXPECT_EQ(lines[1].substr(col - 1, 1), "0");  // 5 / 10 = 0, right-aligned
  EXPECT_EQ(lines[2].substr(col - 8, 8), "12345678");
}

TEST(AnalyzeReverseDns, LoopbackIsLocalhost) {
  ReverseDnsOptions o;
  o.timeout = 5s;
  ReverseDns dns(o);
  auto name = dns.name(ip("127.0.0.1"));
  ASSERT_TRUE(name) << "127.0.0.1 has no name (no /etc/hosts entry?)";
  EXPECT_EQ(*name, "localhost");
  // Cached: no second lookup.
  EXPECT_EQ(dns.name(ip("127.0.0.1")), name);
  EXPECT_EQ(dns.counters().lookups, 1u);
  EXPECT_EQ(dns.counters().names, 1u);
}

TEST(AnalyzeReverseDns, FullCacheStopsLookingUp) {
  ReverseDnsOptions o;
  o.max_cache = 1;
  ReverseDns dns(o);
  (void)dns.name(ip("127.0.0.1"));
  EXPECT_FALSE(dns.name(ip("127.0.0.2")).has_value());
  EXPECT_EQ(dns.counters().not_asked, 1u);
}

TEST(AnalyzeFormat, ResolvedNamesInJsonAndTable) {
  ReverseDnsOptions o;
  o.timeout = 5s;
  ReverseDns dns(o);
  ConnectionNamer namer(nullptr, &dns);
  Connection c = conn(40001, 7000, 5, kT0, "127.0.0.1", "127.0.0.1");
  auto n = namer.names(c);
  ASSERT_TRUE(n.source_name);
  std::string text;
  append_connection_json(c, n, text);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["source_name"], "localhost");
  EXPECT_EQ(j["destination_name"], "localhost");
  EXPECT_EQ(table_cells(c, n)[4], "localhost (127.0.0.1:40001)");
}

}  // namespace
}  // namespace flowd::analyze
