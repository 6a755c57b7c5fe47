// SPDX-License-Identifier: Apache-2.0
// The Scitags registry: parsing and lookups (ScitagsRegistry) and where it comes from
// (load_registry).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "test_files.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/registry_loader.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd {
namespace {

namespace fs = std::filesystem;

const std::string kFixture = FLOWD_FIXTURES "/registry/api.json";

using flowd::test::read_text_file;

void write_text_file(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  ASSERT_TRUE(out) << "cannot write " << path;
  out << text;
}

std::shared_ptr<const ScitagsRegistry> parse_ok(std::string_view json) {
  std::string error;
  auto reg = ScitagsRegistry::parse(json, error);
  EXPECT_TRUE(reg) << error;
  return reg;
}

// Parses `json`, expecting failure; returns the error text.
std::string parse_error(std::string_view json) {
  std::string error;
  auto reg = ScitagsRegistry::parse(json, error);
  EXPECT_EQ(reg, nullptr) << json;
  EXPECT_FALSE(error.empty()) << json;
  return error;
}

void expect_contains(const std::string& haystack, std::string_view needle) {
  EXPECT_NE(haystack.find(needle), std::string::npos) << "'" << needle << "' not in: " << haystack;
}

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "flowd-registry-test-XXXXXX").string();
    char* made = ::mkdtemp(templ.data());
    EXPECT_NE(made, nullptr);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A TCP port on 127.0.0.1 that nothing listens on: bound, then released.
int closed_local_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Checks the ids the spec lists (§5) and a few activities.
void expect_current_ids(const ScitagsRegistry& r) {
  const std::pair<const char*, unsigned> experiments[] = {
      {"default", 1}, {"atlas", 2}, {"cms", 3},   {"lhcb", 4},  {"alice", 5},
      {"belleii", 6}, {"ska", 7},   {"dune", 8},  {"lsst", 9},  {"ilc", 10},
      {"auger", 11},  {"juno", 12}, {"nova", 13}, {"xenon", 14}};
  EXPECT_EQ(r.experiment_count(), 14u);
  for (const auto& [name, id] : experiments) {
    EXPECT_EQ(r.experiment_id(name), id) << name;
    EXPECT_EQ(r.experiment_name(id), name);
    EXPECT_EQ(r.activity_id(id, "default"), 1u) << name;
  }
  EXPECT_EQ(r.activity_id(2, "Debug"), 9u);
  EXPECT_EQ(r.activity_id(2, "Production Output"), 16u);  // scitag 144 = 2 << 6 | 16
  EXPECT_EQ(r.activity_id(3, "Data Challenge"), 4u);
  EXPECT_EQ(r.activity_id(2, "perfSONAR"), 2u);
  EXPECT_EQ(r.activity_name(2, 9), "Debug");
  EXPECT_EQ(r.modified(), "2025-09-04T12:01:55.844133+00:00");
}

// ---------------------------------------------------------------------------------------------
// Parsing and lookups.

TEST(ScitagsRegistry, ParsesTheFixture) {
  auto reg = parse_ok(read_text_file(kFixture));
  ASSERT_TRUE(reg);
  expect_current_ids(*reg);
}

TEST(ScitagsRegistry, ParsesTheBuiltInSnapshot) {
  auto reg = parse_ok(registry_snapshot_json());
  ASSERT_TRUE(reg);
  expect_current_ids(*reg);
}

TEST(ScitagsRegistry, NumbersAreAlwaysAccepted) {
  auto reg = parse_ok(read_text_file(kFixture));
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->experiment_id("0"), 0u);
  EXPECT_EQ(reg->experiment_id("2"), 2u);
  EXPECT_EQ(reg->experiment_id("511"), 511u);
  EXPECT_EQ(reg->experiment_id("300"), 300u);  // not registered, still a valid id
  EXPECT_EQ(reg->experiment_id("512"), std::nullopt);
  EXPECT_EQ(reg->experiment_id("99999999999999999999"), std::nullopt);
  EXPECT_EQ(reg->activity_id(2, "0"), 0u);
  EXPECT_EQ(reg->activity_id(2, "63"), 63u);
  EXPECT_EQ(reg->activity_id(300, "63"), 63u);
  EXPECT_EQ(reg->activity_id(2, "64"), std::nullopt);
  EXPECT_EQ(reg->activity_id(2, "007"), 7u);
}

// try15d D9: `_` for a space, as a pipe line writes names, is taken wherever a name is (rules, the
// marker's fixed tag, `flowd label encode`); before, only the pipe took it.
TEST(ScitagsRegistry, AnActivityNameMayWriteAnUnderscoreForASpace) {
  auto reg = parse_ok(read_text_file(kFixture));
  ASSERT_TRUE(reg);
  ASSERT_TRUE(reg->activity_id(2, "Data Challenge"));
  EXPECT_EQ(reg->activity_id(2, "Data_Challenge"), reg->activity_id(2, "Data Challenge"));
  EXPECT_EQ(reg->activity_id(2, "Data_Challenge_"), std::nullopt);
}

TEST(ScitagsRegistry, NamesAreExact) {
  auto reg = parse_ok(read_text_file(kFixture));
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->experiment_id("ATLAS"), std::nullopt);
  EXPECT_EQ(reg->experiment_id(" atlas"), std::nullopt);
  EXPECT_EQ(reg->experiment_id(""), std::nullopt);
  EXPECT_EQ(reg->experiment_id("-1"), std::nullopt);
  EXPECT_EQ(reg->experiment_id("2x"), std::nullopt);
  EXPECT_EQ(reg->activity_id(2, "debug"), std::nullopt);
  EXPECT_EQ(reg->activity_id(2, "data_challenge"), std::nullopt);
  EXPECT_EQ(reg->activity_id(4, "Debug"), std::nullopt);      // not an lhcb activity
  EXPECT_EQ(reg->activity_id(300, "default"), std::nullopt);  // no such experiment
  EXPECT_EQ(reg->activity_id(2, ""), std::nullopt);
}

TEST(ScitagsRegistry, NamesForUnregisteredIdsAreNumbers) {
  auto reg = parse_ok(read_text_file(kFixture));
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->experiment_name(300), "300");
  EXPECT_EQ(reg->experiment_name(0), "0");
  EXPECT_EQ(reg->activity_name(2, 63), "63");
  EXPECT_EQ(reg->activity_name(300, 1), "1");
}

TEST(ScitagsRegistry, MinimalDocument) {
  auto reg = parse_ok(R"({"experiments": [{"expName": "solo", "expId": 511}]})");
  ASSERT_TRUE(reg);
  EXPECT_EQ(reg->experiment_count(), 1u);
  EXPECT_EQ(reg->experiment_id("solo"), 511u);
  EXPECT_EQ(reg->activity_id(511, "default"), std::nullopt);
  EXPECT_EQ(reg->modified(), "");
  auto with_acts = parse_ok(
      R"({"experiments": [{"expName": "x", "expId": 0, "activities": [{"activityName": "a b", "activityId": 63}]}]})");
  ASSERT_TRUE(with_acts);
  EXPECT_EQ(with_acts->activity_id(0, "a b"), 63u);
}

TEST(ScitagsRegistry, MalformedDocuments) {
  expect_contains(parse_error(""), "not valid JSON");
  expect_contains(parse_error("not json"), "not valid JSON");
  expect_contains(parse_error(R"({"experiments": [)"), "not valid JSON");
  expect_contains(parse_error("[]"), "experiments");
  expect_contains(parse_error("{}"), "experiments");
  expect_contains(parse_error(R"({"experiments": {}})"), "experiments");
  expect_contains(parse_error(R"({"experiments": "atlas"})"), "experiments");
  expect_contains(parse_error(R"({"experiments": []})"), "no experiments");
  expect_contains(parse_error(R"({"experiments": [1]})"), "experiments[0] is not an object");

  // expId: negative, too large, a string, fractional, missing.
  expect_contains(parse_error(R"({"experiments": [{"expName": "a", "expId": -1}]})"), "expId");
  auto e = parse_error(
      R"({"experiments": [{"expName": "a", "expId": 1}, {"expName": "b", "expId": 512}]})");
  expect_contains(e, "experiments[1]");
  expect_contains(e, "512");
  expect_contains(parse_error(R"({"experiments": [{"expName": "a", "expId": "2"}]})"), "expId");
  expect_contains(parse_error(R"({"experiments": [{"expName": "a", "expId": 2.5}]})"), "expId");
  expect_contains(parse_error(R"({"experiments": [{"expName": "a"}]})"), "expId");
  expect_contains(parse_error(R"({"experiments": [{"expName": 2, "expId": 2}]})"), "expName");

  // activities.
  const char* bad_activities[] = {
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": {}}]})",
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": [7]}]})",
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": [{"activityName": "x", "activityId": 64}]}]})",
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": [{"activityName": "x", "activityId": -1}]}]})",
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": [{"activityName": "x", "activityId": "1"}]}]})",
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": [{"activityName": "x"}]}]})",
      R"({"experiments": [{"expName": "a", "expId": 2, "activities": [{"activityId": 1}]}]})",
  };
  for (const char* json : bad_activities) {
    SCOPED_TRACE(json);
    expect_contains(parse_error(json), "activities");
  }
}

// ---------------------------------------------------------------------------------------------
// load_registry: source, cache, snapshot.

TEST(LoadRegistry, EmptySourceIsTheSnapshot) {
  RegistryLoad l = load_registry("", "", 1);
  ASSERT_TRUE(l.registry);
  EXPECT_TRUE(l.warning.empty()) << l.warning;
  expect_contains(l.registry->source(), "built-in snapshot");
  expect_current_ids(*l.registry);
}

TEST(LoadRegistry, FilePath) {
  TempDir work;
  RegistryLoad l = load_registry(kFixture, work.path().string(), 1);
  ASSERT_TRUE(l.registry);
  EXPECT_TRUE(l.warning.empty()) << l.warning;
  EXPECT_EQ(l.registry->source(), kFixture);
  expect_current_ids(*l.registry);
  // Only downloads are cached.
  EXPECT_FALSE(fs::exists(work.path() / "api.json"));
}

TEST(LoadRegistry, FileUrl) {
  RegistryLoad l = load_registry("file://" + kFixture, "", 1);
  ASSERT_TRUE(l.registry);
  EXPECT_TRUE(l.warning.empty()) << l.warning;
  EXPECT_EQ(l.registry->experiment_id("atlas"), 2u);
}

TEST(LoadRegistry, MissingFileFallsBackToTheSnapshot) {
  TempDir work;
  std::string missing = (work.path() / "no-such-file.json").string();
  RegistryLoad l = load_registry(missing, work.path().string(), 1);
  ASSERT_TRUE(l.registry);
  expect_contains(l.warning, missing);
  expect_contains(l.warning, "cannot open");
  expect_contains(l.warning, "using the built-in snapshot");
  expect_contains(l.registry->source(), "built-in snapshot");
  expect_current_ids(*l.registry);
}

TEST(LoadRegistry, BadFileButGoodCacheUsesTheCache) {
  TempDir work;
  fs::path bad = work.path() / "bad.json";
  write_text_file(bad, "{\"experiments\": 42}");
  // A cache that differs from the snapshot, so we can tell which one was used.
  write_text_file(work.path() / "api.json",
                  R"({"experiments": [{"expName": "cached", "expId": 77}], "modified": "cache"})");
  RegistryLoad l = load_registry(bad.string(), work.path().string(), 1);
  ASSERT_TRUE(l.registry);
  expect_contains(l.warning, bad.string());
  expect_contains(l.warning, "experiments");
  expect_contains(l.warning, "using the cached copy");
  EXPECT_EQ(l.warning.find("built-in snapshot"), std::string::npos) << l.warning;
  EXPECT_EQ(l.registry->experiment_id("cached"), 77u);
  EXPECT_EQ(l.registry->modified(), "cache");
  expect_contains(l.registry->source(), "(cached copy)");
}

TEST(LoadRegistry, BadFileAndBadCacheUsesTheSnapshot) {
  TempDir work;
  fs::path bad = work.path() / "bad.json";
  write_text_file(bad, "garbage");
  write_text_file(work.path() / "api.json", "also garbage");
  RegistryLoad l = load_registry(bad.string(), work.path().string(), 1);
  ASSERT_TRUE(l.registry);
  expect_contains(l.warning, "not valid JSON");
  expect_contains(l.warning, "using the built-in snapshot");
  EXPECT_EQ(l.registry->experiment_id("atlas"), 2u);
}

TEST(LoadRegistry, UnreachableUrlFallsBack) {
  int port = closed_local_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/api.json";
  RegistryLoad l = load_registry(url, "", 1);
  ASSERT_TRUE(l.registry);
  expect_contains(l.warning, "flow_map_api " + url);
  expect_contains(l.warning, "using the built-in snapshot");
  expect_contains(l.registry->source(), "built-in snapshot");
  expect_current_ids(*l.registry);
}

TEST(LoadRegistry, UnreachableUrlWithACacheUsesTheCache) {
  TempDir work;
  write_text_file(work.path() / "api.json", read_text_file(kFixture));
  int port = closed_local_port();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/api.json";
  RegistryLoad l = load_registry(url, work.path().string(), 1);
  ASSERT_TRUE(l.registry);
  expect_contains(l.warning, url);
  expect_contains(l.warning, "using the cached copy " + (work.path() / "api.json").string());
  expect_current_ids(*l.registry);
}

}  // namespace
}  // namespace flowd
