// SPDX-License-Identifier: Apache-2.0
// flowd analyze: dump lines (DumpLineParser) and dump files (DumpReader): plain, gzip, truncated
// gzip, long and unterminated lines, and every malformed-line reason.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "analyze/dump_line.hpp"
#include "analyze/dump_reader.hpp"
#include "flowd/rfc3339.hpp"

namespace flowd::analyze {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A line as `flowd decode` writes it (nlohmann::json sorts the keys).
const std::string kLine =
    R"({"domain":0,"exporter":"127.0.0.1:40000","fields":{"destinationIPv4Address":"192.0.2.2",)"
    R"("destinationTransportPort":5201,"flowEndMilliseconds":"2026-11-22T14:12:40.951+00:00",)"
    R"("flowStartMilliseconds":"2026-11-22T14:12:40.180Z","octetDeltaCount":1086685,)"
    R"("packetDeltaCount":748,"protocolIdentifier":6,"sourceIPv4Address":"192.0.2.1",)"
    R"("sourceTransportPort":40010,"tcpControlBits":27},"options":false,"template":1024,)"
    R"("time":"2026-11-22T14:12:41.000000+00:00","version":10})";

TimePoint at(std::string_view rfc3339) {
  return *parse_rfc3339(rfc3339);
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "flowd-analyze-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

void write_plain(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

void write_gzip(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
            static_cast<int>(text.size()));
  gzclose(f);
}

std::vector<DumpLine> read_all(DumpReader& r, std::vector<std::string>* texts = nullptr) {
  std::vector<DumpLine> lines;
  DumpLine l;
  while (r.next(l)) {
    lines.push_back(l);
    if (texts) texts->emplace_back(l.text);
  }
  return lines;
}

TEST(AnalyzeDumpLine, ReadsADecodeLine) {
  DumpLineParser p;
  const ParsedLine& r = p.parse(kLine);
  ASSERT_EQ(r.outcome, LineOutcome::kFlow) << r.detail;
  EXPECT_EQ(r.flow.source.to_string(), "192.0.2.1");
  EXPECT_EQ(r.flow.destination_port, 5201);
  EXPECT_EQ(r.flow.protocol, 6);
  EXPECT_EQ(r.flow.octets, 1086685u);
  EXPECT_EQ(r.flow.packets, 748u);
  EXPECT_EQ(r.flow.start, at("2026-11-22T14:12:40.180Z"));
  EXPECT_EQ(r.flow.end, at("2026-11-22T14:12:40.951Z"));
  EXPECT_EQ(r.flow.time_source, TimeSource::kFlow);
  ASSERT_TRUE(r.received);
  EXPECT_EQ(*r.received, at("2026-11-22T14:12:41Z"));
}

TEST(AnalyzeDumpLine, TimesWithAnyFractionAndZone) {
  DumpLineParser p;
  for (std::string t :
       {"2026-11-22T14:12:40Z", "2026-11-22T14:12:40.5Z", "2026-11-22T14:12:40.500+00:00",
        "2026-11-22T14:12:40.500000Z", "2026-11-22T14:12:40.500000000+00:00"}) {
    std::string line =
        R"({"time":")" + t +
        R"(","fields":{"sourceIPv4Address":"192.0.2.1","destinationIPv4Address":"192.0.2.2",)"
        R"("flowStartSeconds":")" +
        t + R"("}})";
    const ParsedLine& r = p.parse(line);
    ASSERT_EQ(r.outcome, LineOutcome::kFlow) << t << ": " << r.detail;
    EXPECT_EQ(r.flow.start, at(t));
    EXPECT_EQ(r.flow.time_source, TimeSource::kFlowStart);
  }
}

TEST(AnalyzeDumpLine, WithoutFlowTimesTheReceiveTimeIsUsed) {
  DumpLineParser p;
  const ParsedLine& r = p.parse(
      R"({"time":"2026-11-22T14:12:41.123456+00:00","options":false,"fields":{"sourceIPv6Address":"2001:db8::1",)"
      R"("destinationIPv6Address":"2001:db8::2","protocolIdentifier":17,"octetDeltaCount":42}})");
  ASSERT_EQ(r.outcome, LineOutcome::kFlow) << r.detail;
  EXPECT_EQ(r.flow.time_source, TimeSource::kReceived);
  EXPECT_EQ(r.flow.start, at("2026-11-22T14:12:41.123456Z"));
  EXPECT_EQ(r.flow.end, r.flow.start);
}

TEST(AnalyzeDumpLine, OptionsAndAddresslessRecordsAreSkipped) {
  DumpLineParser p;
  EXPECT_EQ(
      p.parse(R"({"time":"2026-11-22T14:12:41Z","options":true,"fields":{"samplingInterval":2}})")
          .outcome,
      LineOutcome::kOptions);
  EXPECT_EQ(
      p.parse(R"({"time":"2026-11-22T14:12:41Z","options":false,"fields":{"octetDeltaCount":2}})")
          .outcome,
      LineOutcome::kNoAddresses);
  EXPECT_EQ(p.parse("").outcome, LineOutcome::kBlank);
  EXPECT_EQ(p.parse("  \r").outcome, LineOutcome::kBlank);
}

TEST(AnalyzeDumpLine, RepeatedElementUsesItsFirstValue) {
  DumpLineParser p;
  const ParsedLine& r = p.parse(
      R"({"time":"2026-11-22T14:12:41Z","fields":{"sourceIPv4Address":["192.0.2.1","192.0.2.9"],)"
      R"("destinationIPv4Address":"192.0.2.2","octetDeltaCount":[5,6]}})");
  ASSERT_EQ(r.outcome, LineOutcome::kFlow) << r.detail;
  EXPECT_EQ(r.flow.source.to_string(), "192.0.2.1");
  EXPECT_EQ(r.flow.octets, 5u);
}

struct BadLine {
  std::string line;
  LineError error;
};

class AnalyzeDumpLineMalformed : public ::testing::TestWithParam<BadLine> {};

TEST_P(AnalyzeDumpLineMalformed, IsCountedByReason) {
  DumpLineParser p;
  const ParsedLine& r = p.parse(GetParam().line);
  ASSERT_EQ(r.outcome, LineOutcome::kMalformed) << GetParam().line;
  EXPECT_EQ(r.error, GetParam().error) << GetParam().line << ": " << r.detail;
  EXPECT_FALSE(r.detail.empty());
  // The parser is reusable after an error.
  EXPECT_EQ(p.parse(kLine).outcome, LineOutcome::kFlow);
}

const std::string kAddrs =
    R"("sourceIPv4Address":"192.0.2.1","destinationIPv4Address":"192.0.2.2")";

INSTANTIATE_TEST_SUITE_P(
    Reasons, AnalyzeDumpLineMalformed,
    ::testing::Values(
        BadLine{"not json", LineError::kJson},
        BadLine{kLine.substr(0, kLine.size() / 2), LineError::kJson},  // cut off
        BadLine{R"({"time":"2026-11-22T14:12:41Z","fields":{}} trailing)", LineError::kJson},
        BadLine{"[1,2]", LineError::kType},
        BadLine{R"({"time":"2026-11-22T14:12:41Z"})", LineError::kMissing},
        BadLine{R"({"fields":{)" + kAddrs + "}}", LineError::kMissing},  // no time at all
        BadLine{R"({"time":"2026-11-22T14:12:41Z","fields":[]})", LineError::kType},
        BadLine{R"({"time":5,"fields":{)" + kAddrs + "}}", LineError::kType},
        BadLine{R"({"time":"yesterday","fields":{)" + kAddrs + "}}", LineError::kValue},
        BadLine{R"({"time":"2026-11-22T14:12:41Z","options":"no","fields":{)" + kAddrs + "}}",
                LineError::kType},
        BadLine{
            R"({"time":"2026-11-22T14:12:41Z","fields":{"sourceIPv4Address":17,"destinationIPv4Address":"192.0.2.2"}})",
            LineError::kType},
        BadLine{
            R"({"time":"2026-11-22T14:12:41Z","fields":{"sourceIPv4Address":"2001:db8::1","destinationIPv4Address":"192.0.2.2"}})",
            LineError::kValue},
        BadLine{
            R"({"time":"2026-11-22T14:12:41Z","fields":{"sourceIPv4Address":"192.0.2.300","destinationIPv4Address":"192.0.2.2"}})",
            LineError::kValue},
        BadLine{
            R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs + R"(,"octetDeltaCount":-1}})",
            LineError::kType},
        BadLine{R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs +
                    R"(,"octetDeltaCount":"12"}})",
                LineError::kType},
        BadLine{
            R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs + R"(,"octetDeltaCount":1.5}})",
            LineError::kType},
        BadLine{R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs +
                    R"(,"sourceTransportPort":70000}})",
                LineError::kValue},
        BadLine{R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs +
                    R"(,"flowStartMilliseconds":12}})",
                LineError::kType},
        BadLine{R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs +
                    R"(,"flowStartMilliseconds":"2026-13-01T00:00:00Z"}})",
                LineError::kValue},
        BadLine{
            R"({"time":"2026-11-22T14:12:41Z","fields":{)" + kAddrs + R"(,"octetDeltaCount":[]}})",
            LineError::kType},
        BadLine{std::string(kMaxLineBytes + 1, ' ') + "x", LineError::kTooLong}));

TEST(AnalyzeDumpReader, PlainAndGzipGiveTheSameLines) {
  TempDir d;
  const std::string text = kLine + "\n\n" + "second\r\n" + "third";
  write_plain(d.file("plain.json"), text);
  write_gzip(d.file("dump.json.gz"), text);
  for (const auto& name : {"plain.json", "dump.json.gz"}) {
    DumpReader r(d.file(name));
    std::vector<std::string> texts;
    auto lines = read_all(r, &texts);
    ASSERT_EQ(lines.size(), 4u) << name;
    EXPECT_EQ(texts[0], kLine);
    EXPECT_EQ(texts[1], "");
    EXPECT_EQ(texts[2], "second\r");
    EXPECT_EQ(texts[3], "third");
    EXPECT_EQ(lines[3].number, 4u);
    EXPECT_TRUE(lines[3].unterminated);
    EXPECT_FALSE(lines[2].unterminated);
    EXPECT_TRUE(r.error().empty()) << r.error();
  }
}

TEST(AnalyzeDumpReader, TruncatedGzipIsReportedAfterTheLinesBeforeIt) {
  TempDir d;
  std::string text;
  // Incompressible enough that the cut lands well inside the data.
  for (int i = 0; i < 20000; ++i) text += kLine.substr(0, 40) + std::to_string(i * 7919) + "\n";
  write_gzip(d.file("full.gz"), text);
  const auto size = fs::file_size(d.file("full.gz"));
  fs::copy_file(d.file("full.gz"), d.file("cut.gz"));
  fs::resize_file(d.file("cut.gz"), size / 2);
  DumpReader r(d.file("cut.gz"));
  auto lines = read_all(r);
  EXPECT_GT(lines.size(), 100u);
  EXPECT_LT(lines.size(), 20000u);
  EXPECT_NE(r.error().find("truncated"), std::string::npos) << r.error();
}

TEST(AnalyzeDumpReader, OverlongLineIsSkippedWithoutBeingKept) {
  TempDir d;
  write_plain(d.file("long.json"),
              "a\n" + std::string(5000, 'x') + "\nb\n" + std::string(3000, 'y'));
  DumpReader r(d.file("long.json"), 1000);
  std::vector<std::string> texts;
  auto lines = read_all(r, &texts);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(texts[0], "a");
  EXPECT_TRUE(lines[1].too_long);
  EXPECT_EQ(lines[1].number, 2u);
  EXPECT_EQ(texts[2], "b");
  EXPECT_TRUE(lines[3].too_long);
  EXPECT_EQ(lines[3].number, 4u);
}

TEST(AnalyzeDumpReader, MissingFileThrows) {
  EXPECT_THROW(DumpReader("/nonexistent/dump.json"), std::runtime_error);
}

TEST(AnalyzeDumpReader, LinesAreParsedInPlace) {
  TempDir d;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += kLine + "\n";
  write_gzip(d.file("many.gz"), text);
  DumpReader r(d.file("many.gz"));
  DumpLineParser p;
  DumpLine l;
  int flows = 0;
  while (r.next(l))
    if (p.parse(l.text, /*padded=*/true).outcome == LineOutcome::kFlow) ++flows;
  EXPECT_EQ(flows, 3000);
}

}  // namespace
}  // namespace flowd::analyze
