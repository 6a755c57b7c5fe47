// SPDX-License-Identifier: Apache-2.0
#include "core/registry_loader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/owned_file.hpp"
#include "common/unique_fd.hpp"

namespace flowd {
namespace {

constexpr std::size_t kMaxRegistryBytes = 4 << 20;

struct Download {
  std::string body;
  bool too_big = false;
};

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

bool fetch_url(const std::string& url, long timeout, std::stop_token stop, std::string& body,
               std::string& error) {
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
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
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
  if (status != 200) {
    error = fmt::format("HTTP status {}", status);
    return false;
  }
  body = std::move(d.body);
  return true;
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

void write_cache(const std::string& work_dir, const std::string& body) {
  if (work_dir.empty()) return;
  // A fresh file of our own (mkstemp: O_CREAT|O_EXCL), renamed over api.json: a link or a file
  // another user put at api.json is never opened or written through (issue 13). A cache that cannot
  // be written costs only the fallback at the next start.
  replace_file_atomically(work_dir + "/api.json", body, 0644);
}

std::shared_ptr<const ScitagsRegistry> parse_with_source(const std::string& body,
                                                         const std::string& source,
                                                         std::string& error) {
  auto reg = ScitagsRegistry::parse(body, error);
  if (!reg) return nullptr;
  auto copy = std::make_shared<ScitagsRegistry>(*reg);
  copy->set_source(source);
  return copy;
}

}  // namespace

RegistryLoad load_registry(std::string_view source_view, const std::string& work_dir, long timeout,
                           std::stop_token stop) {
  RegistryLoad out;
  std::string source(source_view);
  std::string error, body;
  if (!source.empty()) {
    bool is_url = source.rfind("http://", 0) == 0 || source.rfind("https://", 0) == 0;
    std::string path = source.rfind("file://", 0) == 0 ? source.substr(7) : source;
    bool ok = is_url ? fetch_url(source, timeout, stop, body, error) : read_file(path, body, error);
    if (ok) {
      if (auto reg = parse_with_source(body, source, error)) {
        if (is_url) write_cache(work_dir, body);
        out.registry = reg;
        return out;
      }
    }
    out.warning = fmt::format("flow_map_api {}: {}", source, error);
    if (!work_dir.empty()) {
      std::string cached = work_dir + "/api.json", cerr;
      if (read_file(cached, body, cerr)) {
        if (auto reg = parse_with_source(body, cached + " (cached copy)", cerr)) {
          out.warning += "; using the cached copy " + cached;
          out.registry = reg;
          return out;
        }
      }
    }
    out.warning += "; using the built-in snapshot";
  }
  std::string snap_error;
  auto snap = ScitagsRegistry::parse(registry_snapshot_json(), snap_error);
  auto copy = std::make_shared<ScitagsRegistry>(*snap);
  copy->set_source("built-in snapshot (modified " + snap->modified() + ")");
  out.registry = copy;
  return out;
}

}  // namespace flowd
