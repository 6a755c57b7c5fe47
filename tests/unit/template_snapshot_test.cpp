// SPDX-License-Identifier: Apache-2.0
// Templates that survive a restart (issue 16 §3): a decoder's snapshot, written to the template
// file and read back into a new decoder, decodes the data of real captures (their template sets cut
// out) exactly as the decoder that saw the templates; a file that is not ours is refused whole, a
// malformed entry skipped alone; an entry the wire could not have carried, or one past its
// lifetime, is left out, and what the bounds refuse or evict is counted as such.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "collector/decoder_snapshot.hpp"
#include "collector/template_budget.hpp"
#include "collector_test_support.hpp"
#include "plugins/netflow/template_file.hpp"

using namespace collector_test;
namespace fs = std::filesystem;

namespace {

// `payload` without its template and options template sets (v9 set ids 0 and 1, IPFIX 2 and 3):
// what an exporter sends between two template refreshes.
std::vector<std::uint8_t> without_templates(const std::vector<std::uint8_t>& payload) {
  const std::uint16_t version = be16(payload.data());
  const std::size_t header = version == 9 ? 20 : 16;
  std::vector<std::uint8_t> out(payload.begin(), payload.begin() + header);
  std::size_t p = header;
  const std::size_t end = version == 10 ? be16(payload.data() + 2) : payload.size();
  while (end - p >= 4) {
    const std::uint16_t id = be16(payload.data() + p);
    const std::size_t len = be16(payload.data() + p + 2);
    if (len < 4 || len > end - p) break;
    const bool template_set = version == 9 ? id <= 1 : (id == 2 || id == 3);
    if (!template_set) out.insert(out.end(), payload.begin() + p, payload.begin() + p + len);
    p += len;
  }
  if (version == 10) {
    out[2] = static_cast<std::uint8_t>(out.size() >> 8);
    out[3] = static_cast<std::uint8_t>(out.size() & 0xff);
  }
  return out;
}

bool has_template_set(const std::vector<std::uint8_t>& payload) {
  return without_templates(payload).size() != payload.size();
}

std::vector<nlohmann::json> as_json(const fc::RecordBatch& records) {
  std::vector<nlohmann::json> out;
  for (const auto& r : records) out.push_back(fc::to_json(r));
  return out;
}

// The bound the default limits give one worker.
const std::size_t kMaxFile = flowd::netflow::max_template_file_bytes(fc::DecoderLimits{}, 1);

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/flowd-templates-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

class TemplateSnapshot : public ::testing::TestWithParam<const char*> {};

// The capture's first datagram with a template set goes to decoder A; A's snapshot makes the round
// trip through the file into decoder B (another "process"). Every later datagram, its template sets
// cut out, decodes in B to exactly A's records; a decoder without the snapshot decodes none.
TEST_P(TemplateSnapshot, AFileRoundTripDecodesTheDataWithoutTheNextTemplate) {
  auto datagrams = read_pcap_udp(kFixtures + "/netflow/" + GetParam() + ".pcap");
  ASSERT_GE(datagrams.size(), 2u);
  std::size_t first = 0;
  while (first < datagrams.size() && !has_template_set(datagrams[first].payload)) ++first;
  ASSERT_LT(first + 1, datagrams.size()) << "no template set before the last datagram";

  // Counters scaled by the sampling rate: the options data that announced it must come back too.
  fc::DecoderLimits limits;
  limits.apply_sampling = true;
  fc::Decoder a(limits), c(limits);
  fc::RecordBatch ignored;
  for (std::size_t i = 0; i <= first; ++i)
    a.decode(datagrams[i].payload, datagrams[i].from, kNow, ignored);
  ASSERT_GT(a.template_count(), 0u);

  TempDir dir;
  const std::string path = flowd::netflow::template_file_path(dir.path, "plugin.netflow");
  ASSERT_EQ(flowd::netflow::write_template_file(path, a.snapshot()), "");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string error;
  const auto file = flowd::netflow::read_template_file(path, kMaxFile, kNow, error);
  ASSERT_TRUE(file) << error;
  const auto* saved = &file->snapshot;
  EXPECT_EQ(saved->templates.size(), a.template_count());

  fc::Decoder b(limits);
  const auto r = b.restore(*saved, kNow + std::chrono::seconds(60));
  EXPECT_EQ(r.templates, a.template_count());
  EXPECT_EQ(r.expired + r.invalid, 0u);
  EXPECT_EQ(b.template_count(), a.template_count());

  std::size_t compared = 0;
  for (std::size_t i = first + 1; i < datagrams.size(); ++i) {
    const auto data = without_templates(datagrams[i].payload);
    fc::RecordBatch from_a, from_b, from_c;
    a.decode(data, datagrams[i].from, kNow + std::chrono::seconds(60), from_a);
    b.decode(data, datagrams[i].from, kNow + std::chrono::seconds(60), from_b);
    c.decode(data, datagrams[i].from, kNow + std::chrono::seconds(60), from_c);
    EXPECT_EQ(as_json(from_b), as_json(from_a)) << "datagram " << i;
    EXPECT_TRUE(from_c.empty()) << "datagram " << i << " decoded without its template";
    compared += from_a.size();
  }
  EXPECT_GT(compared, 0u);
}

INSTANTIATE_TEST_SUITE_P(Captures, TemplateSnapshot,
                         ::testing::Values("softflowd-ipfix", "softflowd-ipfix-milli",
                                           "softflowd-ipfix-biflow-ether", "pmacctd-nfprobe-v9",
                                           "pmacctd-nfprobe-v10"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

fc::SavedTemplate ipfix_template(std::uint16_t id) {
  fc::SavedTemplate t;
  t.owner.exporter = *flowd::IpAddress::parse("192.0.2.7");
  t.owner.port = 4739;
  t.owner.version = 10;
  t.id = id;
  t.fields = {{0, 8, 4}, {0, 12, 4}, {0, 2, 8}};
  t.seen = kNow;
  return t;
}

TEST(TemplateRestore, KeepsTheLifetimeLeftAndLeavesOutTheExpired) {
  fc::DecoderLimits limits;
  limits.template_timeout = std::chrono::seconds(100);
  fc::Decoder d(limits);
  fc::DecoderSnapshot s;
  s.templates.push_back(ipfix_template(256));
  s.templates.push_back(ipfix_template(257));
  s.templates.back().seen = kNow - std::chrono::seconds(150);  // past its lifetime
  s.templates.push_back(ipfix_template(258));
  s.templates.back().seen = kNow + std::chrono::hours(1);  // the clock went back: counts as now
  const auto r = d.restore(s, kNow);
  EXPECT_EQ(r.templates, 2u);
  EXPECT_EQ(r.expired, 1u);
  EXPECT_EQ(d.template_count(), 2u);
  // 256 has 100 s from kNow, not more: expired 101 s later.
  d.expire(kNow + std::chrono::seconds(99));
  EXPECT_EQ(d.template_count(), 2u);
  d.expire(kNow + std::chrono::seconds(101));
  EXPECT_EQ(d.template_count(), 0u);
}

// What restore() says it kept is what the decoder holds afterwards: templates a later one of the
// same snapshot evicted to stay within the byte bounds are counted as evicted, not as taken back
// (a new user's try read "took back 300000" of a file the bounds kept 94,786 of; issue 16).
TEST(TemplateRestore, CountsWhatTheBoundsKeptAndWhyTheRestWent) {
  fc::DecoderLimits limits;
  limits.max_template_bytes_per_exporter = 64 << 10;
  limits.max_template_bytes = 64 << 10;
  fc::Decoder d(limits);
  fc::DecoderSnapshot s;
  for (std::uint16_t id = 256; id < 1256; ++id) s.templates.push_back(ipfix_template(id));
  const auto r = d.restore(s, kNow);
  EXPECT_EQ(r.templates, d.template_count());
  EXPECT_LT(r.templates, 1000u);
  EXPECT_GT(r.templates, 0u);
  EXPECT_EQ(r.evicted_exporter_bytes + r.evicted_total_bytes, 1000u - r.templates);
  EXPECT_EQ(r.refused_max_templates + r.refused_too_large + r.invalid + r.expired, 0u);

  fc::DecoderLimits few;
  few.max_templates_per_exporter = 10;
  fc::Decoder e(few);
  const auto r2 = e.restore(s, kNow);
  EXPECT_EQ(r2.templates, 10u);
  EXPECT_EQ(r2.refused_max_templates, 990u);
  EXPECT_EQ(e.template_count(), 10u);
}

TEST(TemplateRestore, LeavesOutWhatTheWireCouldNotCarry) {
  fc::Decoder d;
  fc::DecoderSnapshot s;
  auto bad = [&](auto change) {
    auto t = ipfix_template(256);
    change(t);
    s.templates.push_back(t);
  };
  bad([](auto& t) { t.id = 255; });               // a set id, not a template id
  bad([](auto& t) { t.fields.clear(); });         // no fields
  bad([](auto& t) { t.fields = {{0, 8, 0}}; });   // records of 0 bytes
  bad([](auto& t) { t.owner.version = 5; });      // v5 has no templates
  bad([](auto& t) { t.owner.version = 9; });      // v9 keys by address: port must be 0
  bad([](auto& t) { t.options = true; });         // options without a scope
  bad([](auto& t) { t.scope_count = 1; });        // a scope in a data template
  bad([](auto& t) { t.fields[0].id = 0x8008; });  // the enterprise bit is not an id
  bad([](auto& t) { t.owner.exporter = flowd::IpAddress{}; });  // no address family
  bad([](auto& t) {
    t.owner.version = 9;
    t.owner.port = 0;
    t.fields[0].pen = 9;  // v9 has no enterprise numbers
  });
  const auto r = d.restore(s, kNow);
  EXPECT_EQ(r.templates, 0u);
  EXPECT_EQ(r.invalid, s.templates.size());
  EXPECT_EQ(d.template_count(), 0u);
}

TEST(TemplateRestore, TakesBackSamplingRatesAndKeepsTheirBound) {
  fc::DecoderSnapshot s;
  fc::SavedDomain dom;
  dom.owner.exporter = *flowd::IpAddress::parse("2001:db8::1");
  dom.owner.version = 9;
  dom.seen = kNow;
  dom.default_rate = 100;
  for (std::uint64_t i = 0; i < 1000; ++i) dom.rates.emplace_back(i, 10 + i);
  s.domains.push_back(dom);
  fc::Decoder d;
  const auto r = d.restore(s, kNow);
  EXPECT_EQ(r.domains, 1u);
  const auto back = d.snapshot();
  ASSERT_EQ(back.domains.size(), 1u);
  EXPECT_EQ(back.domains[0].default_rate, std::optional<std::uint64_t>(100));
  EXPECT_EQ(back.domains[0].rates.size(), 256u);  // DomainState::kMaxRates
}

TEST(TemplateFile, WhatIsNotOursIsRefusedWhole) {
  TempDir dir;
  const std::string path = dir.path + "/templates.plugin.netflow.json";
  std::string error;
  EXPECT_FALSE(flowd::netflow::read_template_file(path, kMaxFile, kNow, error));
  EXPECT_EQ(error, "") << "no file is not an error";

  auto with = [&](const std::string& body) {
    std::ofstream(path, std::ios::trunc) << body;
    error.clear();
    return flowd::netflow::read_template_file(path, kMaxFile, kNow, error);
  };
  EXPECT_FALSE(with("{\"format\": \"flowd-templates\", \"version\": 1, \"templ"));
  EXPECT_NE(error.find("not JSON"), std::string::npos) << error;
  EXPECT_FALSE(with(R"({"format": 739, "version": 1})"));  // found by template_file_fuzz
  EXPECT_NE(error.find("flowd-templates"), std::string::npos) << error;
  EXPECT_FALSE(with(R"({"hooks": []})"));
  EXPECT_NE(error.find("flowd-templates"), std::string::npos) << error;
  EXPECT_FALSE(
      with(R"({"format": "flowd-templates", "version": 2, "templates": [], "domains": []})"));
  EXPECT_NE(error.find("version"), std::string::npos) << error;
  EXPECT_FALSE(
      with(R"({"format": "flowd-templates", "version": 1, "templates": {}, "domains": []})"));
  EXPECT_NE(error.find("arrays"), std::string::npos) << error;
  EXPECT_TRUE(
      with(R"({"format": "flowd-templates", "version": 1, "templates": [], "domains": []})"))
      << error;

  // A link is never followed, whatever it points at.
  const std::string target = dir.path + "/real.json";
  fs::rename(path, target);
  fs::create_symlink(target, path);
  EXPECT_FALSE(flowd::netflow::read_template_file(path, kMaxFile, kNow, error));
  EXPECT_NE(error, "");
}

// One bad entry costs that entry, not the file (a new user's try found one malformed template
// refusing every other, and a seen_ms in 2100 taken as now; issue 16).
TEST(TemplateFile, AMalformedOrFutureEntryIsSkippedAndTheRestKept) {
  const auto entry = [](const std::string& id, const std::string& seen_ms,
                        const std::string& fields = "[[0, 8, 4]]") {
    return R"({"exporter": "192.0.2.1", "port": 1, "ipfix_version": 10, "domain": 0, "id": )" + id +
           R"(, "options": false, "scope_count": 0, "seen_ms": )" + seen_ms + R"(, "fields": )" +
           fields + "}";
  };
  const std::string now_ms = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(kNow.time_since_epoch()).count());
  const std::string year_2100 = "4102444800000";
  const std::string body =
      R"({"format": "flowd-templates", "version": 1, "templates": [)" + entry("256", now_ms) +
      ", " + entry("257", now_ms, "[[0, 8, 70000]]") + ", " +  // length > 65535
      entry("258", year_2100) + ", 42, " + entry("259", now_ms) +
      R"(], "domains": [{"exporter": "banana", "port": 1, "ipfix_version": 10, "domain": 0, "seen_ms": 1},
                           {"exporter": "192.0.2.1", "port": 1, "ipfix_version": 10, "domain": 0, "seen_ms": )" +
      now_ms + R"(, "default_rate": 10}]})";
  std::string error;
  const auto file = flowd::netflow::parse_template_file(body, kNow, error);
  ASSERT_TRUE(file) << error;
  ASSERT_EQ(file->snapshot.templates.size(), 2u);
  EXPECT_EQ(file->snapshot.templates[0].id, 256);
  EXPECT_EQ(file->snapshot.templates[1].id, 259);
  EXPECT_EQ(file->skipped_templates, 3u);  // 257, 258 (year 2100), 42
  EXPECT_EQ(file->first_skipped, "template 2");
  ASSERT_EQ(file->snapshot.domains.size(), 1u);
  EXPECT_EQ(file->skipped_domains, 1u);
  // An hour ahead is the clock set back a little: kept (and counted as now by the decoder).
  const std::string soon = std::to_string(std::stoll(now_ms) + 3'000'000);
  const auto near = flowd::netflow::parse_template_file(
      R"({"format": "flowd-templates", "version": 1, "templates": [)" + entry("256", soon) +
          R"(], "domains": []})",
      kNow, error);
  ASSERT_TRUE(near) << error;
  EXPECT_EQ(near->snapshot.templates.size(), 1u);
}

// The file is read only up to what the template bounds could have written: a larger one is refused
// unread, saying its size and the bound (a new user's try gave a 100 MB file and got 983 MB of
// memory and a 10.7 s start).
TEST(TemplateFile, ALargerFileThanTheBoundsCouldWriteIsRefusedUnread) {
  fc::DecoderLimits small;
  small.max_template_bytes = 1 << 20;
  small.max_template_bytes_per_exporter = 1 << 20;
  const std::size_t bound = flowd::netflow::max_template_file_bytes(small, 1);
  EXPECT_LT(bound, 16u << 20);
  EXPECT_GT(bound, small.max_template_bytes);
  TempDir dir;
  const std::string path = dir.path + "/templates.plugin.netflow.json";
  {
    std::ofstream out(path);
    out << R"({"format": "flowd-templates", "version": 1, "domains": [], "templates": [)";
    out << std::string(bound, ' ') << "]}";
  }
  std::string error;
  EXPECT_FALSE(flowd::netflow::read_template_file(path, bound, kNow, error));
  EXPECT_NE(error.find("more than the " + std::to_string(bound) + " read at most"),
            std::string::npos)
      << error;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::size_t file_size(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<std::size_t>(st.st_size);
}

// The widest a v9 exporter's template of `n` fields can be: five-digit types and lengths.
fc::SavedTemplate wide_v9_template(const std::string& exporter, std::uint16_t id, std::size_t n) {
  fc::SavedTemplate t;
  t.owner.exporter = *flowd::IpAddress::parse(exporter);
  t.owner.version = 9;
  t.owner.domain = 4294967295u;
  t.id = id;
  t.fields.assign(n, {0, 65535, 65535});
  t.seen = kNow;
  return t;
}

// The longest entries the bound is made of are what the writer writes at most: a template, a field
// of each kind, a domain and a rate with every number at its widest and the longest address
// inet_ntop() writes (39 characters, 6 fewer than the bound's; times of 13 digits, 7 fewer).
TEST(TemplateFile, TheLongestEntriesAreWhatTheWriterWritesAtMost) {
  namespace nf = flowd::netflow;
  const std::string widest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  fc::DecoderSnapshot s;
  s.templates.push_back(wide_v9_template(widest, 65535, 1));
  s.templates.back().owner.version = 10;
  s.templates.back().owner.port = 65535;
  s.templates.back().scope_count = 65535;
  s.templates.back().fields = {{4294967295u, 32767, 65535}, {0, 32767, 65535}};
  fc::SavedDomain d;
  d.owner = s.templates.back().owner;
  d.seen = kNow;
  d.system_init_ms = d.default_rate = 18446744073709551615u;
  d.rates = {{18446744073709551615u, 18446744073709551615u}};
  s.domains.push_back(d);
  TempDir dir;
  const std::string path = dir.path + "/t.json";
  ASSERT_EQ(nf::write_template_file(path, s), "");
  const std::size_t most = nf::kLongestFrame.size() + nf::kLongestTemplate.size() +
                           nf::kLongestEnterpriseField.size() + nf::kLongestIpfixField.size() +
                           nf::kLongestDomain.size() + nf::kLongestRate.size();
  const std::size_t written = file_size(path);
  EXPECT_LE(written, most) << read_file(path);
  // Exactly nlohmann's compact dump of itself (the writer writes the text, not a JSON document).
  const std::string body = read_file(path);
  EXPECT_EQ(body, nlohmann::json::parse(body).dump() + "\n");
  // Only the addresses (6 shorter each), the times of 13 digits (written_ms and both seen_ms, 7
  // shorter each) and the commas after the last field, rate, template and domain differ.
  EXPECT_EQ(written, most - 2 * 6 - 3 * 7 - 4) << read_file(path);
  // A v9 field at its widest.
  s.templates.back().owner.version = 9;
  s.templates.back().fields = {{0, 65535, 65535}, {0, 65535, 65535}};
  ASSERT_EQ(nf::write_template_file(path, s), "");
  EXPECT_EQ(file_size(path), written - nf::kLongestEnterpriseField.size() +
                                 nf::kLongestV9Field.size() - 1 /* "9" for "10" */);
}

// The bound is what flowd's own writer makes of the most the bounds hold, and little more: a v9
// exporter's widest templates filling max_template_bytes, and the most domains a worker keeps with
// the most sampler rates, all numbers at their widest. (It was 1.5 times max_template_bytes plus
// 1 MiB of slack: a crafted file of 105 MB under it took 11.5 s and 248 MB to start, when flowd
// itself writes at most 89 MB; issue 16.)
TEST(TemplateFile, TheBoundIsTheLargestFileFlowdWritesWithinTheBounds) {
  namespace nf = flowd::netflow;
  fc::DecoderLimits limits;
  limits.max_template_bytes = 4 << 20;
  limits.max_template_bytes_per_exporter = 1 << 20;
  fc::Decoder decoder(limits);
  fc::DecoderSnapshot s;
  // 16,369 fields: the most a v9 template set holds in one UDP datagram; more than the bounds keep.
  for (int e = 0; e < 6; ++e)
    for (std::uint16_t id = 256; id < 262; ++id)
      s.templates.push_back(wide_v9_template(
          "2001:db8:ffff:ffff:ffff:ffff:ffff:" + std::to_string(1000 + e), id, 16369));
  // The most domains a decoder keeps, and sampler rates per domain (Decoder::State::kMaxDomains,
  // DomainState::kMaxRates).
  constexpr std::size_t kDomains = 1024, kRates = 256;
  for (std::uint32_t n = 0; n < kDomains + 10; ++n) {
    fc::SavedDomain d;
    d.owner.exporter = *flowd::IpAddress::parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    d.owner.version = 10;
    d.owner.port = 65535;
    d.owner.domain = 4294967295u - n;
    d.seen = kNow;
    d.system_init_ms = d.default_rate = 18446744073709551615u;
    for (std::uint64_t r = 0; r < kRates + 10; ++r)
      d.rates.emplace_back(18446744073709551615u - r, 18446744073709551615u - r);
    s.domains.push_back(std::move(d));
  }
  decoder.restore(s, kNow);
  const auto kept = decoder.snapshot();
  ASSERT_GE(kept.templates.size(), 20u);
  ASSERT_EQ(kept.domains.size(), kDomains);
  ASSERT_EQ(kept.domains.front().rates.size(), kRates);
  TempDir dir;
  const std::string path = dir.path + "/t.json";
  ASSERT_EQ(nf::write_template_file(path, kept), "");
  const std::size_t written = file_size(path);
  const std::size_t bound = nf::max_template_file_bytes(limits, 1);
  EXPECT_LE(written, bound);
  EXPECT_GE(written, bound / 100 * 95) << "the bound is " << bound << ", flowd wrote " << written;
  std::string error;
  EXPECT_TRUE(nf::read_template_file(path, bound, kNow, error)) << error;
  // With the defaults: under 105 MB (the crafted file above is refused unread), and above the
  // 89 MB a v9 exporter's widest templates make of max_template_bytes alone.
  EXPECT_LT(kMaxFile, 104'000'000u);
  EXPECT_GT(kMaxFile, 64u * (1 << 20) / 3 * 4 + 11'000'000u);
}

// Several workers' snapshots, taken at different times, may together hold more templates than the
// bounds ever held at once: the file keeps the most recently seen within max_template_bytes, so
// that flowd never writes a file it would refuse to read.
TEST(TemplateFile, WhatIsWrittenIsCutToMaxTemplateBytes) {
  fc::DecoderSnapshot s;
  for (std::uint16_t id = 256; id < 266; ++id) {
    s.templates.push_back(wide_v9_template("192.0.2.1", id, 100));
    s.templates.back().seen = kNow + std::chrono::seconds(id);
  }
  const std::size_t one = fc::saved_template_bytes(s.templates.front());
  EXPECT_GT(one, 100 * sizeof(fc::FieldSpec));
  EXPECT_EQ(fc::fit_templates(s, 10 * one), 0u);
  EXPECT_EQ(fc::fit_templates(s, 4 * one + one / 2), 6u);
  ASSERT_EQ(s.templates.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(s.templates[i].id, 262 + i);
  // What a decoder holds of a template is charged at least saved_template_bytes().
  fc::DecoderLimits limits;
  limits.budget = std::make_shared<fc::TemplateBudget>(fc::TemplateBounds{});
  fc::Decoder d(limits);
  d.restore(s, kNow + std::chrono::seconds(300));
  EXPECT_EQ(d.template_count(), 4u);
  EXPECT_GE(limits.budget->bytes(), 4 * one);
}

}  // namespace
