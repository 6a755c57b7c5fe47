// SPDX-License-Identifier: Apache-2.0
#include "core/registry_loader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/owned_file.hpp"
#include "common/unique_fd.hpp"
#include "flowd/rfc3339.hpp"

namespace flowd {
namespace {

constexpr std::size_t kMaxRegistryBytes = 4 << 20;

struct Download {
  std::string body;
  bool too_big = false;
  RegistryValidators validators;  // of the last response (a redirect's are replaced)
};

// A header value flowd keeps and sends back: printable ASCII, bounded. Anything else (a CR or LF
// that would end the header early, a megabyte of ETag) is dropped: the download is then
// unconditional, which is only slower.
std::string header_value(std::string_view v) {
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
    v.remove_suffix(1);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  if (v.size() > 512) return {};
  for (char c : v)
    if (c < 0x20 || c > 0x7e) return {};
  return std::string(v);
}

bool starts_with_nocase(std::string_view line, std::string_view prefix) {
  if (line.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(line[i])) != prefix[i]) return false;
  return true;
}

std::size_t on_curl_header(char* ptr, std::size_t size, std::size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  const std::string_view line(ptr, size * n);
  if (line.starts_with("HTTP/")) {
    d->validators.etag.clear();
    d->validators.last_modified.clear();
  } else if (starts_with_nocase(line, "etag:")) {
    d->validators.etag = header_value(line.substr(5));
  } else if (starts_with_nocase(line, "last-modified:")) {
    d->validators.last_modified = header_value(line.substr(14));
  }
  return size * n;
}

std::size_t on_curl_data(char* ptr, std::size_t size, std::size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  if (d->body.size() + size * n > kMaxRegistryBytes) {
    d->too_big = true;
    return 0;
  }
  d->body.append(ptr, size * n);
  return size * n;
}

// libcurl calls this about once a second even while nothing arrives; non-zero aborts the transfer.
int on_curl_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::stop_token*>(user)->stop_requested() ? 1 : 0;
}

// Status 200: true with body and validators; 304 (only when `known` was sent): true with
// not_modified set; anything else false with `error`.
bool fetch_url(const std::string& url, const RegistryValidators& known, long timeout,
               std::stop_token stop, std::string& body, RegistryValidators& validators,
               bool& not_modified, std::string& error) {
  not_modified = false;
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!curl_ready) {
    error = "libcurl failed to initialise";
    return false;
  }
  CURL* h = curl_easy_init();
  if (!h) {
    error = "curl_easy_init failed";
    return false;
  }
  Download d;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "flowd-cpp/" FLOWD_VERSION);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_curl_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_curl_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &stop);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_curl_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &d);
  curl_slist* headers = nullptr;
  const bool conditional = known.source == url && !known.empty();
  if (conditional) {
    if (!known.etag.empty())
      headers = curl_slist_append(headers, ("If-None-Match: " + known.etag).c_str());
    if (!known.last_modified.empty())
      headers = curl_slist_append(headers, ("If-Modified-Since: " + known.last_modified).c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  }
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  if (d.too_big) {
    error = "larger than 4 MiB";
    return false;
  }
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    error = "abandoned: flowd is stopping";
    return false;
  }
  if (rc != CURLE_OK) {
    error = curl_easy_strerror(rc);
    return false;
  }
  if (status == 304 && conditional) {
    not_modified = true;
    return true;
  }
  if (status != 200) {
    error = fmt::format("HTTP status {}", status);
    return false;
  }
  body = std::move(d.body);
  validators = std::move(d.validators);
  validators.source = url;
  return true;
}

bool is_url(const std::string& source) {
  return source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0;
}

std::string file_path(const std::string& source) {
  return source.rfind("file://", 0) == 0 ? source.substr(7) : source;
}

std::string cache_path(const std::string& work_dir) {
  return work_dir + "/api.json";
}

std::string validators_path(const std::string& work_dir) {
  return work_dir + "/api.json.validators";
}

// The snapshot's `modified` time; the epoch when it has none.
std::chrono::system_clock::time_point modified_time(const ScitagsRegistry& r) {
  if (auto t = parse_rfc3339(r.modified()))
    return std::chrono::time_point_cast<std::chrono::system_clock::duration>(*t);
  return {};
}

std::chrono::system_clock::time_point file_mtime(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::chrono::system_clock::now();
  return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec));
}

bool read_file(const std::string& path, std::string& body, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open";
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  body = ss.str();
  if (body.size() > kMaxRegistryBytes) {
    error = "larger than 4 MiB";
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const ScitagsRegistry> parse_registry(const std::string& body,
                                                      const std::string& source,
                                                      std::string& error) {
  auto reg = ScitagsRegistry::parse(body, error);
  if (!reg) return nullptr;
  auto copy = std::make_shared<ScitagsRegistry>(*reg);
  copy->set_source(source);
  return copy;
}

RegistryValidators read_cached_validators(const std::string& work_dir) {
  RegistryValidators v;
  std::string text, error;
  if (work_dir.empty() || !read_file(validators_path(work_dir), text, error) || text.size() > 4096)
    return v;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    const std::string key = line.substr(0, sp), value = header_value(line.substr(sp + 1));
    if (key == "source") v.source = value;
    if (key == "etag") v.etag = value;
    if (key == "last-modified") v.last_modified = value;
  }
  return v;
}

void write_registry_cache(const std::string& work_dir, const std::string& body,
                          const RegistryValidators& validators) {
  if (work_dir.empty()) return;
  // A fresh file of our own (mkstemp: O_CREAT|O_EXCL), renamed over api.json: a link or a file
  // another user put at api.json is never opened or written through (issue 13). The validators
  // go first, so that a crash in between leaves a copy without validators (an unconditional
  // download next time), never a copy paired with another copy's validators.
  ::unlink(validators_path(work_dir).c_str());
  if (!replace_file_atomically(cache_path(work_dir), body, 0644).empty()) return;
  if (validators.empty()) return;
  replace_file_atomically(validators_path(work_dir),
                          fmt::format("source {}\netag {}\nlast-modified {}\n", validators.source,
                                      validators.etag, validators.last_modified),
                          0644);
}

RegistryFetch fetch_registry(const std::string& source, const RegistryValidators& known,
                             long timeout, std::stop_token stop) {
  RegistryFetch out;
  bool ok = false, not_modified = false;
  if (is_url(source))
    ok = fetch_url(source, known, timeout, stop, out.body, out.validators, not_modified, out.error);
  else
    ok = read_file(file_path(source), out.body, out.error);
  out.status = !ok            ? RegistryFetch::Status::kFailed
               : not_modified ? RegistryFetch::Status::kNotModified
                              : RegistryFetch::Status::kNew;
  return out;
}

RegistryLoad load_registry(std::string_view source_view, const std::string& work_dir, long timeout,
                           std::stop_token stop) {
  RegistryLoad out;
  std::string source(source_view);
  std::string error;
  if (!source.empty()) {
    const std::string cached = work_dir.empty() ? "" : cache_path(work_dir);
    // Validators only with a cached copy that parses: a 304 must have something to keep.
    RegistryValidators known;
    std::string cached_body, cerr;
    std::shared_ptr<const ScitagsRegistry> cached_reg;
    if (!cached.empty() && read_file(cached, cached_body, cerr))
      cached_reg = parse_registry(cached_body, cached + " (cached copy)", cerr);
    if (cached_reg && is_url(source)) known = read_cached_validators(work_dir);
    RegistryFetch f = fetch_registry(source, known, timeout, stop);
    error = f.error;
    if (f.status == RegistryFetch::Status::kNotModified) {
      auto copy = std::make_shared<ScitagsRegistry>(*cached_reg);
      copy->set_source(source + " (not modified since the cached copy " + cached + ")");
      out.registry = copy;
      out.current_at = std::chrono::system_clock::now();
      ::utimensat(AT_FDCWD, cached.c_str(), nullptr, 0);  // the cached copy's age starts again
      return out;
    }
    if (f.status == RegistryFetch::Status::kNew) {
      if (auto reg = parse_registry(f.body, source, error)) {
        if (is_url(source)) write_registry_cache(work_dir, f.body, f.validators);
        out.registry = reg;
        out.current_at = std::chrono::system_clock::now();
        return out;
      }
    }
    out.warning = fmt::format("flow_map_api {}: {}", source, error);
    if (cached_reg) {
      out.warning += "; using the cached copy " + cached;
      out.registry = cached_reg;
      out.current_at = file_mtime(cached);
      return out;
    }
    out.warning += "; using the built-in snapshot";
  }
  std::string snap_error;
  auto snap = ScitagsRegistry::parse(registry_snapshot_json(), snap_error);
  auto copy = std::make_shared<ScitagsRegistry>(*snap);
  copy->set_source("built-in snapshot (modified " + snap->modified() + ")");
  out.registry = copy;
  out.current_at = modified_time(*snap);
  return out;
}

}  // namespace flowd
