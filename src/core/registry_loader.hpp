// SPDX-License-Identifier: Apache-2.0
// Where the registry comes from: flow_map_api (http(s) URL or file) -> cached copy -> built-in
// snapshot. An http(s) registry is cached in work_dir (api.json) with its HTTP validators
// (api.json.validators: ETag, Last-Modified), so that the next download, at a start or a
// background refresh, is conditional (If-None-Match, If-Modified-Since) and a 304 keeps the copy.
#pragma once

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "flowd/scitags_registry.hpp"

namespace flowd {

// What an HTTP server said identifies its copy (RFC 9110 §8.8); empty when it sent none.
struct RegistryValidators {
  std::string source;  // the URL they belong to
  std::string etag;
  std::string last_modified;
  bool empty() const { return etag.empty() && last_modified.empty(); }
};

struct RegistryLoad {
  std::shared_ptr<const ScitagsRegistry> registry;  // never null
  std::string warning;                              // non-empty when we fell back
  // When the registry's content was last known current: now for a download, a 304 or a file;
  // the cache file's modification time for the cached copy; the snapshot's `modified` time.
  std::chrono::system_clock::time_point current_at;
};

// The registry JSON compiled into the binary (a copy of scitags.org/api.json).
std::string_view registry_snapshot_json();

// An http(s) download takes at most `timeout_seconds` and gives up within about a second of `stop`
// being requested (then the fallbacks apply as for any failed download). With a cached copy whose
// validators belong to `source`, the download is conditional and a 304 loads the cached copy.
RegistryLoad load_registry(std::string_view source, const std::string& work_dir,
                           long timeout_seconds, std::stop_token stop = {});

// One conditional fetch of flow_map_api, for the background refresh.
struct RegistryFetch {
  enum class Status { kNew, kNotModified, kFailed };
  Status status = Status::kFailed;
  std::string body;               // kNew
  RegistryValidators validators;  // kNew: what the server sent with it
  std::string error;              // kFailed: why, for the log
};
// `known`: the validators of the copy in use (ignored unless they belong to `source`). A file is
// read whole every time (kNew). Bounded like load_registry's download.
RegistryFetch fetch_registry(const std::string& source, const RegistryValidators& known,
                             long timeout_seconds, std::stop_token stop);

// The cached copy's validators (api.json.validators in work_dir); empty when there are none.
RegistryValidators read_cached_validators(const std::string& work_dir);
// Replaces the cached copy and its validators (the validators file first removed, so that a copy
// is never paired with another copy's validators). A cache that cannot be written costs only the
// fallback at the next start.
void write_registry_cache(const std::string& work_dir, const std::string& body,
                          const RegistryValidators& validators);

// Parses `body` and names `source` as where it came from; nullptr with `error` set when it does
// not parse.
std::shared_ptr<const ScitagsRegistry> parse_registry(const std::string& body,
                                                      const std::string& source,
                                                      std::string& error);

}  // namespace flowd
