// SPDX-License-Identifier: Apache-2.0
// The np_api plugin on a real named pipe, driven the way the runtime drives it (start, run on a
// thread, stop), to check what happens to bytes already in the pipe when it stops (issue 13).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/registry_loader.hpp"
#include "flowd/component.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/reload_shelf.hpp"
#include "plugins/np_api/np_api.hpp"

namespace flowd {
namespace {

struct Collect final : Publisher {
  void publish(std::span<const FlowID> flows) override {
    std::lock_guard lock(mu);
    got.insert(got.end(), flows.begin(), flows.end());
  }
  std::mutex mu;
  std::vector<FlowID> got;
};

struct Env {
  Env() {
    char tmpl[] = "/tmp/flowd-np-api-XXXXXX";
    dir = ::mkdtemp(tmpl);
    pipe = dir + "/flowd.np";
    ctx.shelf = &shelf;
  }
  ~Env() { std::filesystem::remove_all(dir); }

  std::unique_ptr<Plugin> make(std::map<std::string, std::string> v = {}) {
    const auto& info = np_api::plugin_info();
    v["path"] = pipe;
    for (const auto& k : info.keys)
      if (!v.contains(std::string(k.name))) v[std::string(k.name)] = std::string(k.default_value);
    return info.create(Section("plugin.np_api", info.keys, v, {}), ctx, "np_api");
  }
  void write(const std::string& data) {
    int fd = ::open(pipe.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::close(fd);
  }

  std::string dir, pipe;
  RegistryHandle registry{load_registry("", "/nonexistent", 1).registry};
  prometheus::Registry metrics;
  MetricsHub hub{metrics};
  ReloadShelf shelf;
  Context ctx{registry, metrics, hub, "host.example", "/nonexistent"};
};

std::string lines(int from, int n) {
  std::string s;
  for (int i = from; i < from + n; ++i)
    s += "start tcp 127.0.0.1 " + std::to_string(i) + " 127.0.0.1 5777 2 9\n";
  return s;
}

// run() called with the stop already requested: what is in the pipe was written before the stop.
TEST(NpApiPlugin, LinesInThePipeAtStopAreRead) {
  Env env;
  auto p = env.make();
  p->start();
  env.write(lines(1000, 300));
  std::stop_source stop;
  stop.request_stop();
  Collect out;
  p->run(stop.get_token(), out);
  p->stop();
  EXPECT_EQ(out.got.size(), 300u);
  env.shelf.clear();
  struct stat st {};
  EXPECT_NE(::lstat(env.pipe.c_str(), &st), 0) << "the pipe is removed once no successor takes it";
}

// A reload that restarts np_api: the successor gets the same open pipe, the bytes written between
// the two instances and the partial line the first one held.
TEST(NpApiPlugin, TheSuccessorTakesThePipeItsBytesAndThePartialLine) {
  Env env;
  std::stop_source stop1;
  Collect out1;
  auto first = env.make();
  first->start();
  struct stat before {};
  ASSERT_EQ(::lstat(env.pipe.c_str(), &before), 0);
  env.write(lines(1, 2) + "start tcp 127.0.0.1 3 127.0");  // two lines and a half
  stop1.request_stop();
  first->run(stop1.get_token(), out1);
  first->stop();
  EXPECT_EQ(out1.got.size(), 2u);
  // The pipe, and the check's table of the two TCP flows (try15g 7).
  EXPECT_EQ(env.shelf.size(), 2u);
  struct stat between {};
  ASSERT_EQ(::lstat(env.pipe.c_str(), &between), 0) << "the pipe stays while np_api restarts";
  env.write(".0.1 5777 2 9\n" + lines(4, 1));  // the rest of the half line, then one more

  auto second = env.make({{"max_line_length", "4000"}});
  second->start();
  EXPECT_EQ(env.shelf.size(), 0u);
  struct stat after {};
  ASSERT_EQ(::lstat(env.pipe.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "the same pipe, not a new one";
  std::stop_source stop2;
  stop2.request_stop();
  Collect out2;
  second->run(stop2.get_token(), out2);
  second->stop();
  ASSERT_EQ(out2.got.size(), 2u);
  EXPECT_EQ(out2.got[0].src_port, 3);
  EXPECT_EQ(out2.got[1].src_port, 4);
  env.shelf.clear();
}

}  // namespace
}  // namespace flowd
