// SPDX-License-Identifier: Apache-2.0
// Files flowd writes by path (common/owned_file.hpp) and the netflow/sflow `dump` that uses it:
// a symbolic link, a FIFO, another user's file or a second hard link at the path is refused and
// left untouched; a normal path is created 0640 and appended to (issue 13).
#include "common/owned_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "collector/flow_record.hpp"
#include "collector/record_json_writer.hpp"
#include "plugins/netflow/record_dump.hpp"

namespace flowd {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    std::string t = (fs::temp_directory_path() / "flowd-owned-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& body) {
  std::ofstream(path) << body;
}

// The message of the exception `f` throws ("" when it throws none).
template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(OwnedFile, NormalPathIsCreated0640AndAppended) {
  TempDir d;
  const auto path = d.file("out.json");
  const mode_t old = umask(022);
  {
    UniqueFd fd = open_owned_regular_file(path, O_APPEND, 0640);
    ASSERT_EQ(write(fd.get(), "a\n", 2), 2);
  }
  {
    UniqueFd fd = open_owned_regular_file(path, O_APPEND, 0640);
    ASSERT_EQ(write(fd.get(), "b\n", 2), 2);
    EXPECT_EQ(fcntl(fd.get(), F_GETFL) & O_NONBLOCK, 0);
  }
  umask(old);
  EXPECT_EQ(slurp(path), "a\nb\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // O_TRUNC empties it, after the checks.
  { UniqueFd fd = open_owned_regular_file(path, O_TRUNC, 0640); }
  EXPECT_EQ(slurp(path), "");
}

TEST(OwnedFile, SymlinkToAnotherFileIsRefusedAndTheTargetUntouched) {
  TempDir d;
  const auto target = d.file("victim");
  spit(target, "precious\n");
  ASSERT_EQ(chmod(target.c_str(), 0600), 0);
  if (geteuid() == 0) {
    ASSERT_EQ(chown(target.c_str(), 0, 0), 0);  // a root-owned file
  }
  struct stat before {};
  ASSERT_EQ(stat(target.c_str(), &before), 0);
  const auto link = d.file("dump.json");
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  for (int flags : {O_APPEND, O_TRUNC}) {
    const auto why = refusal([&] { open_owned_regular_file(link, flags, 0640); });
    EXPECT_NE(why.find(link), std::string::npos) << why;
    EXPECT_NE(why.find("symbolic link"), std::string::npos) << why;
    EXPECT_NE(why.find("remove it"), std::string::npos) << why;
  }
  // A link to a path that does not exist yet is not followed to create it either.
  const auto dangling = d.file("dangling.json");
  ASSERT_EQ(symlink(d.file("created-through-link").c_str(), dangling.c_str()), 0);
  EXPECT_NE(refusal([&] { open_owned_regular_file(dangling, O_APPEND, 0640); }), "");
  EXPECT_FALSE(fs::exists(d.file("created-through-link")));
  struct stat after {};
  ASSERT_EQ(stat(target.c_str(), &after), 0);
  EXPECT_EQ(slurp(target), "precious\n");
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_gid, before.st_gid);
}

TEST(OwnedFile, FifoIsRefusedWithoutBlocking) {
  TempDir d;
  const auto path = d.file("dump.json");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto why = refusal([&] { open_owned_regular_file(path, O_APPEND, 0640); });
  EXPECT_NE(why.find("named pipe"), std::string::npos) << why;
  EXPECT_NE(why.find(path), std::string::npos) << why;
  // With a reader on the FIFO, too.
  UniqueFd reader(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader);
  why = refusal([&] { open_owned_regular_file(path, O_APPEND, 0640); });
  EXPECT_NE(why.find("named pipe"), std::string::npos) << why;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
}

TEST(OwnedFile, DirectoryAnotherUsersFileAndHardLinkAreRefused) {
  TempDir d;
  EXPECT_NE(refusal([&] { open_owned_regular_file(d.path, O_APPEND, 0640); }).find("directory"),
            std::string::npos);
  const auto linked = d.file("linked");
  spit(linked, "x\n");
  ASSERT_EQ(link(linked.c_str(), d.file("second-name").c_str()), 0);
  EXPECT_NE(refusal([&] { open_owned_regular_file(linked, O_TRUNC, 0640); }).find("hard links"),
            std::string::npos);
  EXPECT_EQ(slurp(linked), "x\n");  // not truncated
  if (geteuid() != 0) GTEST_SKIP() << "chown to another user needs root";
  const auto foreign = d.file("foreign");
  spit(foreign, "theirs\n");
  ASSERT_EQ(chown(foreign.c_str(), 65534, 65534), 0);
  const auto why = refusal([&] { open_owned_regular_file(foreign, O_TRUNC, 0640); });
  EXPECT_NE(why.find("owned by uid 65534"), std::string::npos) << why;
  EXPECT_EQ(slurp(foreign), "theirs\n");
}

TEST(RecordDumpPath, DumpRefusesSymlinkAndFifoAndWritesANormalPath) {
  TempDir d;
  const auto target = d.file("victim");
  spit(target, "precious\n");
  const auto link = d.file("dump.json");
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  netflow::RecordDump dump;
  auto why = refusal([&] { dump.open(link, "[plugin.netflow] "); });
  EXPECT_EQ(why.rfind("[plugin.netflow] dump: " + link, 0), 0u) << why;
  EXPECT_FALSE(dump.is_open());
  EXPECT_EQ(slurp(target), "precious\n");

  const auto fifo = d.file("dump.fifo.gz");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  why = refusal([&] { dump.open(fifo, "[plugin.sflow] "); });
  EXPECT_NE(why.find("named pipe"), std::string::npos) << why;

  const auto normal = d.file("records.json");
  dump.open(normal, "[plugin.netflow] ");
  ASSERT_TRUE(dump.is_open());
  collector::RecordBatch batch;
  batch.next();
  std::string lines;
  collector::RecordJsonWriter().append(lines, batch[0]);
  lines.push_back('\n');
  dump.write(lines);
  dump.close();
  const auto body = slurp(normal);
  EXPECT_FALSE(body.empty());
  EXPECT_EQ(body.back(), '\n');
}

}  // namespace
}  // namespace flowd

namespace flowd {
namespace {

// try15g 8: a flowd killed between replace_file_atomically()'s write and its rename left the
// temporary file, and nothing removed it. try15h D2: only flowd's own temporaries (`path` +
// ".flowd-tmp-" + 6 letters or digits, regular files of this user) go, never an admin's
// `path.backup` or `path.2026v1`.
TEST(OwnedFile, StaleTemporariesOfAFileAreRemovedAndNothingElse) {
  TempDir d;
  const std::string path = d.file("ebpf_marker.1.json");
  ASSERT_EQ(replace_file_atomically(path, "{}", 0600), "");
  for (const char* name :
       {"ebpf_marker.1.json.flowd-tmp-AbC123", "ebpf_marker.1.json.flowd-tmp-AbC12",
        "ebpf_marker.1.json.flowd-tmp-AbC1234", "ebpf_marker.1.json.flowd-tmp-Ab-123",
        "ebpf_marker.2.json.flowd-tmp-AbC123", "ebpf_marker.1.json.backup",
        "ebpf_marker.1.json.2026v1", "ebpf_marker.1.json.AbC123", "other.flowd-tmp-AbC123"})
    std::ofstream(d.file(name)) << "x";
  fs::create_symlink(path, d.file("ebpf_marker.1.json.flowd-tmp-Zz9999"));
  EXPECT_EQ(remove_stale_temporaries(path), 1u);
  EXPECT_FALSE(fs::exists(d.file("ebpf_marker.1.json.flowd-tmp-AbC123")));
  for (const char* kept :
       {"ebpf_marker.1.json", "ebpf_marker.1.json.flowd-tmp-AbC12",
        "ebpf_marker.1.json.flowd-tmp-AbC1234", "ebpf_marker.1.json.flowd-tmp-Ab-123",
        "ebpf_marker.2.json.flowd-tmp-AbC123", "ebpf_marker.1.json.backup",
        "ebpf_marker.1.json.2026v1", "ebpf_marker.1.json.AbC123", "other.flowd-tmp-AbC123"})
    EXPECT_TRUE(fs::exists(d.file(kept))) << kept;
  EXPECT_TRUE(fs::is_symlink(d.file("ebpf_marker.1.json.flowd-tmp-Zz9999")));
}

// try15h: a flowd started by hand under umask 000 made work_dir (and its missing parents) 0777, so
// any user could delete the journal or the marker record in it.
TEST(OwnedFile, DirectoriesItCreatesAreNeverWritableByAllWhateverTheUmask) {
  TempDir d;
  const mode_t old = ::umask(0);
  const std::string record = d.file("a/b/ebpf_marker.1.json");
  const std::string made = replace_file_atomically(record, "{}", 0600);
  create_private_directories(d.file("c/d"));
  ::umask(old);
  ASSERT_EQ(made, "");
  for (const char* dir : {"a", "a/b", "c", "c/d"}) {
    struct stat st {};
    ASSERT_EQ(::stat(d.file(dir).c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << dir;
  }
}

}  // namespace
}  // namespace flowd
