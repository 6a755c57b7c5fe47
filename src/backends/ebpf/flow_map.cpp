// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/flow_map.hpp"

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace flowd::ebpf {

MapShape map_shape(int map_fd) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0) return {};
  return {info.type, info.key_size, info.value_size, info.max_entries};
}

std::uint32_t map_id(int map_fd) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0) return 0;
  return info.id;
}

std::uint64_t count_entries(int map_fd) {
  MapShape shape = map_shape(map_fd);
  if (shape.key_size == 0) return 0;
  std::vector<unsigned char> key(shape.key_size), next(shape.key_size);
  std::uint64_t n = 0;
  const void* prev = nullptr;  // null: the first key
  // Bounded by max_entries (+1 for a key deleted while walking, which restarts at the first key).
  while (n <= shape.max_entries && bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
    ++n;
    key.swap(next);
    prev = key.data();
  }
  return n;
}

CopyResult copy_entries(int from_fd, int to_fd, std::uint32_t key_size, std::uint32_t value_size,
                        std::uint64_t limit) {
  std::vector<unsigned char> key(key_size), next(key_size), value(value_size);
  CopyResult r;
  const void* prev = nullptr;
  MapShape from = map_shape(from_fd);
  // Pinned to the CPU the thread is on; the old affinity is restored afterwards.
  cpu_set_t old_set, one;
  bool pinned = false;
  if (int cpu = ::sched_getcpu();
      cpu >= 0 && ::sched_getaffinity(0, sizeof old_set, &old_set) == 0) {
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned = ::sched_setaffinity(0, sizeof one, &one) == 0;
  }
  // Bounded by max_entries (+1 for a key deleted while walking, which restarts at the first key:
  // what was copied is then met again, EEXIST).
  for (std::uint64_t seen = 0;
       seen <= from.max_entries && bpf_map_get_next_key(from_fd, prev, next.data()) == 0; ++seen) {
    key.swap(next);
    prev = key.data();
    if (bpf_map_lookup_elem(from_fd, key.data(), value.data()) != 0) continue;  // ended meanwhile
    if (r.copied >= limit || r.refusal != 0) {
      // No room: counted unless the new map has it (met again after a restart of the walk).
      if (bpf_map_lookup_elem(to_fd, key.data(), value.data()) != 0) ++r.not_copied;
      continue;
    }
    if (bpf_map_update_elem(to_fd, key.data(), value.data(), BPF_NOEXIST) == 0) {
      ++r.copied;
    } else if (errno != EEXIST) {
      r.refusal = errno;
      ++r.not_copied;
    }
  }
  if (pinned) ::sched_setaffinity(0, sizeof old_set, &old_set);
  return r;
}

UniqueFd open_pinned_map(const std::string& path) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (fd && map_shape(fd.get()).key_size == 0) fd.reset();  // pinned, but not a map
  return fd;
}

std::string foreign_pin(const std::string& path, const MapShape& ours, const std::string& name) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd) return {};  // nothing pinned there (or no BPF file system: pin_map says so)
  // The kind of BPF object: its descriptor's anonymous inode ("anon_inode:bpf-map", "bpf-prog",
  // "bpf_link"); bpf_obj_get_info_by_fd would fill a map's info from a program's.
  char link[64] = {};
  const std::string self = "/proc/self/fd/" + std::to_string(fd.get());
  const ssize_t n = ::readlink(self.c_str(), link, sizeof link - 1);
  const std::string kind = n > 0 ? std::string(link, static_cast<std::size_t>(n)) : "";
  if (kind != "anon_inode:bpf-map")
    return kind.find("prog") != std::string::npos   ? "a BPF program"
           : kind.find("link") != std::string::npos ? "a BPF link"
                                                    : "a BPF object that is not a map";
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
    return std::string("a BPF map whose information the kernel did not give: ") +
           std::strerror(errno);
  const std::string kernel_name(info.name, ::strnlen(info.name, sizeof info.name));
  if (kernel_name == name.substr(0, sizeof info.name - 1) && info.type == ours.type &&
      info.key_size == ours.key_size && info.value_size == ours.value_size)
    return {};
  std::string why = "a BPF map named '";
  why += kernel_name;
  why += "' (type ";
  why += std::to_string(info.type);
  why += ", key ";
  why += std::to_string(info.key_size);
  why += " bytes, value ";
  why += std::to_string(info.value_size);
  why += " bytes)";
  return why;
}

namespace {

// The hint for a directory outside any BPF file system: where to mount one (the directory, or
// its nearest ancestor that exists).
std::string not_bpf_fs(const std::filesystem::path& dir, const std::filesystem::path& mount_at) {
  return dir.string() + " is not in a BPF file system (mount -t bpf bpf " + mount_at.string() + ")";
}

bool on_bpf_fs(const std::filesystem::path& p) {
  struct statfs sfs {};
  return ::statfs(p.c_str(), &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

}  // namespace

std::string pin_map(int map_fd, const std::string& path) {
  namespace fs = std::filesystem;
  auto dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    // Say why, and where a BPF file system would help: under `ip netns exec` (which mounts a
    // sysfs of its own) /sys/fs/bpf is a plain sysfs directory, where nothing can be created.
    std::string why = dir.string() + " cannot be created: " + ec.message();
    fs::path existing = dir;
    std::error_code ignored;
    while (existing.has_parent_path() && existing != existing.parent_path() &&
           !fs::exists(existing, ignored))
      existing = existing.parent_path();
    if (!on_bpf_fs(existing)) why += "; " + not_bpf_fs(existing, existing);
    return why;
  }
  struct statfs sfs {};
  if (::statfs(dir.c_str(), &sfs) != 0) return dir.string() + ": " + std::strerror(errno);
  if (sfs.f_type != BPF_FS_MAGIC) return not_bpf_fs(dir, dir.parent_path());
  ::unlink(path.c_str());  // a pin is replaced, not added to
  if (bpf_obj_pin(map_fd, path.c_str()) != 0) return path + ": " + std::strerror(errno);
  return {};
}

}  // namespace flowd::ebpf
