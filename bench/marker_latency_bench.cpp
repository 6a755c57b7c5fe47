// SPDX-License-Identifier: Apache-2.0
// Pipe write -> flow present in the marker's BPF map, with the real daemon. Run as root:
//   flowd_marker_latency_bench [--flows N] [--flowd PATH]
// It makes a network namespace with a veth pair (fd00:f10e::/64), runs flowd with np_api + ebpf
// there, finds flowd's map by name, and for each flow writes one start line and spins on the map
// lookup.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "flowd_marker.h"

extern char** environ;

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int find_map(const char* name) {
  __u32 id = 0;
  while (bpf_map_get_next_id(id, &id) == 0) {
    int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::strcmp(info.name, name) == 0)
      return fd;
    close(fd);
  }
  return -1;
}

int sh(const std::string& cmd) {
  return std::system(cmd.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  long flows = 2000;
  std::string flowd = FLOWD_BINARY;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--flows") flows = std::stol(argv[i + 1]);
    if (std::string(argv[i]) == "--flowd") flowd = argv[i + 1];
  }
  if (geteuid() != 0) {
    fmt::print(stderr, "needs root (network namespace, BPF)\n");
    return 1;
  }
  std::string ns = fmt::format("flowdlat{}", getpid());
  sh(fmt::format(
      "ip netns add {0} && ip -n {0} link add vl0 type veth peer name vl1 && "
      "ip -n {0} addr add fd00:f10e::1/64 dev vl0 nodad && ip -n {0} link set vl0 up && "
      "ip -n {0} link set vl1 up",
      ns));
  char tmpl[] = "/tmp/flowd-mlat-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/flowd.cfg") << fmt::format(
      "[flowd]\nplugins = np_api\nbackends = ebpf\nwork_dir = {0}/cache\nlog_level = warn\n"
      "[plugin.np_api]\npath = {0}/np\n[backend.ebpf]\ninterfaces = vl0\n",
      dir);
  std::string cfg = dir + "/flowd.cfg", log = dir + "/log";
  std::vector<std::string> args_s{"/usr/sbin/ip", "netns", "exec", ns, flowd, "-c", cfg};
  std::vector<char*> args;
  for (auto& a : args_s) args.push_back(a.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT, 0644);
  pid_t pid;
  posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  int map = -1;
  for (int i = 0; i < 500 && map < 0; ++i) {  // startup only
    usleep(10000);
    struct stat st {};
    if (stat((dir + "/np").c_str(), &st) == 0) map = find_map("flowd_flow_labe");
  }
  if (map < 0) {
    fmt::print(stderr, "flowd's map not found; log:\n");
    sh("cat " + log);
    return 1;
  }
  int fd = open((dir + "/np").c_str(), O_WRONLY);
  std::vector<double> lat;
  for (long i = 0; i < flows; ++i) {
    int sport = 10000 + static_cast<int>(i % 50000);
    std::string line = fmt::format("start tcp fd00:f10e::1 {} fd00:f10e::2 5201 2 9\n", sport);
    flowd_flow_key key{};
    std::memset(&key, 0, sizeof key);
    inet_pton(AF_INET6, "fd00:f10e::2", key.daddr);
    key.sport = htons(static_cast<std::uint16_t>(sport));
    key.dport = htons(5201);
    key.proto = 6;
    __u32 value = 0;
    auto t0 = now_ns();
    if (write(fd, line.data(), line.size()) < 0) return 1;
    // Sleep 10 us between lookups: a spinning reader would take a core from the two flowd threads.
    while (bpf_map_lookup_elem(map, &key, &value) != 0) {
      if (now_ns() - t0 > 1000000000) break;
      timespec pause{0, 10000};
      nanosleep(&pause, nullptr);
    }
    lat.push_back(static_cast<double>(now_ns() - t0) / 1e6);
    std::string end = "end" + line.substr(5);
    if (write(fd, end.data(), end.size()) < 0) return 1;
    usleep(500);  // paced: one flow every ~0.5 ms, the latency of an idle daemon
  }
  std::sort(lat.begin(), lat.end());
  fmt::print("flows={} pipe->map median_ms={:.3f} p99_ms={:.3f} max_ms={:.3f}\n", flows,
             lat[lat.size() / 2],
             lat[static_cast<std::size_t>(0.99 * static_cast<double>(lat.size() - 1))], lat.back());
  kill(pid, SIGTERM);
  int st;
  waitpid(pid, &st, 0);
  sh("ip netns del " + ns + "; rm -rf " + dir);
  return 0;
}
