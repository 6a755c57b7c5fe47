// SPDX-License-Identifier: Apache-2.0
// The marker's lock (a live flowd is told from a dead one) and its record in work_dir (what a
// killed flowd attached), without BPF: neither needs privileges (issue 13).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "backends/ebpf/marker_lock.hpp"
#include "backends/ebpf/marker_record.hpp"

namespace flowd::ebpf {
namespace {

namespace fs = std::filesystem;

struct ScratchDir {
  ScratchDir() {
    std::string t = (fs::temp_directory_path() / "flowd-marker-state-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

TEST(MarkerLock, IsHeldUntilReleasedAndNamesItsHolder) {
  const std::string what = "test:" + std::to_string(::getpid()) + ":eth0";
  pid_t holder = -1;
  std::string error;
  {
    MarkerLock first = MarkerLock::acquire(what, holder, error);
    ASSERT_TRUE(first.held()) << error;
    EXPECT_EQ(first.what(), what);
    MarkerLock second = MarkerLock::acquire(what, holder, error);
    EXPECT_FALSE(second.held());
    EXPECT_EQ(holder, ::getpid()) << "SO_PEERCRED names the live holder";
    EXPECT_EQ(error, "held by another flowd");
  }
  MarkerLock again = MarkerLock::acquire(what, holder, error);
  EXPECT_TRUE(again.held()) << "released with its holder: " << error;
}

TEST(MarkerLock, LongNamesFitAnAbstractSocketAndStayDistinct) {
  const std::string a = "pin:/sys/fs/bpf/" + std::string(200, 'a') + "/1";
  const std::string b = "pin:/sys/fs/bpf/" + std::string(200, 'a') + "/2";
  EXPECT_LE(MarkerLock::socket_name(a).size(), 107u);
  EXPECT_NE(MarkerLock::socket_name(a), MarkerLock::socket_name(b));
  EXPECT_EQ(MarkerLock::socket_name("if:eth0"), "flowd-marker:if:eth0");
}

TEST(MarkerRecord, RoundTripsAndIsPrivate) {
  ScratchDir dir;
  const std::string path = marker_record_path(dir.path + "/cache");
  ASSERT_FALSE(path.empty());
  EXPECT_NE(path.find("/cache/ebpf_marker."), std::string::npos) << path;
  MarkerRecord rec{1234, {{"eth0", 2, true}, {"eth1", 3, false}}};
  ASSERT_EQ(write_marker_record(path, rec), "");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string error;
  auto back = read_marker_record(path, error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->pid, 1234);
  ASSERT_EQ(back->hooks.size(), 2u);
  EXPECT_EQ(back->hooks[0].interface, "eth0");
  EXPECT_EQ(back->hooks[0].ifindex, 2);
  EXPECT_TRUE(back->hooks[0].created_clsact);
  EXPECT_FALSE(back->hooks[1].created_clsact);
  remove_marker_record(path);
  EXPECT_FALSE(read_marker_record(path, error));
  EXPECT_EQ(error, "") << "no record is not an error";
  EXPECT_EQ(marker_record_path(""), "") << "no work_dir, no record";
}

// try15h D3: one record per network namespace and work_dir, so one writer: the lock's holder.
TEST(MarkerRecord, ItsLockHasOneHolderAtATime) {
  ScratchDir dir;
  const std::string path = marker_record_path(dir.path + "/cache");
  bool busy = true;
  std::string error;
  UniqueFd first = lock_marker_record(path, busy, error);
  ASSERT_TRUE(first) << error;
  EXPECT_FALSE(busy);
  {
    UniqueFd second = lock_marker_record(path, busy, error);
    EXPECT_FALSE(second);
    EXPECT_TRUE(busy);
    EXPECT_EQ(error, path + ".lock: locked");
  }
  first.reset();
  UniqueFd again = lock_marker_record(path, busy, error);
  EXPECT_TRUE(again) << "released with its holder: " << error;
}

TEST(MarkerRecord, ALinkIsNeitherReadNorWrittenThrough) {
  ScratchDir dir;
  const std::string path = marker_record_path(dir.path);
  const std::string target = dir.path + "/target";
  std::ofstream(target) << R"({"pid": 1, "hooks": []})";
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  std::string error;
  EXPECT_FALSE(read_marker_record(path, error));
  EXPECT_NE(error, "");
  ASSERT_EQ(write_marker_record(path, {7, {{"eth0", 2, true}}}), "");
  EXPECT_FALSE(fs::is_symlink(path)) << "the link is replaced";
  std::ifstream in(target);
  std::string body((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(body, R"({"pid": 1, "hooks": []})") << "the link's target is untouched";
}

TEST(MarkerRecord, JunkIsRefusedWithAReason) {
  ScratchDir dir;
  const std::string path = marker_record_path(dir.path);
  for (const std::string& body :
       {std::string("not json"), std::string(R"({"pid": 1})"),
        std::string(R"({"hooks": [{"interface": 5, "ifindex": 2, "created_clsact": true}]})"),
        std::string(R"({"hooks": [{"interface": "averyveryverylongname", "ifindex": 2,)"
                    R"( "created_clsact": true}]})"),
        std::string(70000, ' ')}) {
    std::ofstream(path, std::ios::trunc) << body;
    std::string error;
    EXPECT_FALSE(read_marker_record(path, error)) << body.substr(0, 60);
    EXPECT_NE(error, "") << body.substr(0, 60);
  }
}

}  // namespace
}  // namespace flowd::ebpf
