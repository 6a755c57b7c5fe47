// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/marker_record.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/owned_file.hpp"
#include "common/unique_fd.hpp"

namespace flowd::ebpf {
namespace {

constexpr std::size_t kMaxRecordBytes = 64 * 1024;
constexpr std::size_t kMaxHooks = 1024;

}  // namespace

std::string marker_record_path(const std::string& work_dir) {
  if (work_dir.empty()) return {};
  struct stat ns {};
  if (::stat("/proc/self/ns/net", &ns) != 0) return work_dir + "/ebpf_marker.json";
  return work_dir + "/ebpf_marker." + std::to_string(ns.st_ino) + ".json";
}

std::optional<MarkerRecord> read_marker_record(const std::string& path, std::string& error) {
  error.clear();
  if (path.empty()) return std::nullopt;
  const auto body = read_owned_regular_file(path, kMaxRecordBytes, error);
  if (!body) return std::nullopt;
  auto j = nlohmann::json::parse(*body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("hooks") || !j["hooks"].is_array() ||
      j["hooks"].size() > kMaxHooks) {
    error = "not a marker record";
    return std::nullopt;
  }
  MarkerRecord rec;
  if (auto p = j.find("pid"); p != j.end() && p->is_number_integer()) rec.pid = p->get<pid_t>();
  for (const auto& h : j["hooks"]) {
    if (!h.is_object() || !h.contains("interface") || !h["interface"].is_string() ||
        !h.contains("ifindex") || !h["ifindex"].is_number_integer() ||
        !h.contains("created_clsact") || !h["created_clsact"].is_boolean()) {
      error = "not a marker record";
      return std::nullopt;
    }
    RecordedHook hook{h["interface"].get<std::string>(), h["ifindex"].get<int>(),
                      h["created_clsact"].get<bool>()};
    if (hook.interface.empty() || hook.interface.size() >= IFNAMSIZ) {
      error = "not a marker record (interface name)";
      return std::nullopt;
    }
    rec.hooks.push_back(std::move(hook));
  }
  return rec;
}

std::string write_marker_record(const std::string& path, const MarkerRecord& record) {
  namespace fs = std::filesystem;
  nlohmann::json hooks = nlohmann::json::array();
  for (const auto& h : record.hooks)
    hooks.push_back(
        {{"interface", h.interface}, {"ifindex", h.ifindex}, {"created_clsact", h.created_clsact}});
  const std::string body =
      nlohmann::json{{"pid", record.pid}, {"hooks", std::move(hooks)}}.dump() + "\n";
  // A fresh file of our own renamed over the record: a link or another user's file at the path is
  // replaced, never written through.
  return replace_file_atomically(path, body, 0600);
}

void remove_marker_record(const std::string& path) {
  if (!path.empty()) ::unlink(path.c_str());
}

UniqueFd lock_marker_record(const std::string& path, bool& busy, std::string& error) {
  busy = false;
  error.clear();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string lock_path = path + ".lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  // A work_dir mounted read-only: the lock a flowd left is taken read-only (flock needs no write),
  // so that a start still removes what a killed marker left (try16c F3); only its record stays.
  if (const int err = errno; !lock && (err == EROFS || err == EACCES)) {
    lock = UniqueFd(::open(lock_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!lock) errno = err;  // the reason the lock could not be made, not ENOENT
  }
  if (!lock) {
    error = lock_path + ": " + std::strerror(errno);
    return {};
  }
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    busy = errno == EWOULDBLOCK;
    error = lock_path + ": " + (busy ? std::string("locked") : std::string(std::strerror(errno)));
    return {};
  }
  return lock;
}

}  // namespace flowd::ebpf
