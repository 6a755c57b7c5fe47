// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/template_file.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <istream>
#include <iterator>
#include <streambuf>
#include <utility>
#include <vector>

#include "collector/template_budget.hpp"
#include "common/owned_file.hpp"

namespace flowd::netflow {
namespace {

constexpr std::string_view kFormat = "flowd-templates";
constexpr int kVersion = 1;

// A regular file's first `size` bytes (as fstat() gave it: a file that grows meanwhile is not read
// further), read into a buffer of 64 KiB as the stream is consumed.
class FileReader final : public std::streambuf {
 public:
  FileReader(int fd, std::size_t size) : fd_(fd), left_(size), buf_(64 << 10) {}
  int failed() const { return errno_; }  // the errno of a failed read(), else 0

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    while (left_ > 0) {
      const ssize_t n = ::read(fd_, buf_.data(), std::min(buf_.size(), left_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) errno_ = errno;
      if (n <= 0) break;
      left_ -= static_cast<std::size_t>(n);
      setg(buf_.data(), buf_.data(), buf_.data() + n);
      return traits_type::to_int_type(*gptr());
    }
    return traits_type::eof();
  }

 private:
  const int fd_;
  std::size_t left_;
  int errno_ = 0;
  std::vector<char> buf_;
};

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string template_file_path(const std::string& work_dir, const std::string& section) {
  if (work_dir.empty()) return {};
  return work_dir + "/templates." + section + ".json";
}

std::size_t max_template_file_bytes(const collector::DecoderLimits& limits, std::size_t workers) {
  // The file holds templates whose charges add up to at most max_template_bytes (one decoder's
  // snapshot is within its bounds; the merge of several is cut to them: fit_templates()), and at
  // most kMaxSnapshotDomains domains of kMaxSnapshotRates rates per worker. A template's JSON is
  // its members and its fields; what the bounds charge for it is a fixed part (its map node, the
  // Template, the ledger's entries) and a part per field (a FieldSpec, and in IPFIX 4 or 8 raw
  // bytes). Each part writes at most this many characters per byte charged, so the templates
  // write at most the largest of these ratios times max_template_bytes. With the defaults the
  // ratio is a v9 field's, 16 characters ("[0,65535,65535],") for its 12-byte FieldSpec: a v9
  // exporter's templates of 16,369 such fields fill the bounds with 89 MB of JSON
  // (bench/template_file_bench.sh); templates of a few fields write far less (their fixed part
  // writes ~0.5 character per byte charged).
  const std::size_t fixed = collector::template_bytes(collector::Template{});
  const std::size_t spec = sizeof(collector::FieldSpec);
  const std::pair<std::size_t, std::size_t> per_byte[] = {
      {kLongestTemplate.size(), fixed},
      {kLongestV9Field.size(), spec},
      {kLongestIpfixField.size(), spec + 4},
      {kLongestEnterpriseField.size(), spec + 8}};
  auto ratio = per_byte[0];
  for (const auto& r : per_byte)
    if (r.first * ratio.second > ratio.first * r.second) ratio = r;
  const std::size_t templates =
      limits.max_template_bytes / ratio.second * ratio.first +
      (limits.max_template_bytes % ratio.second) * ratio.first / ratio.second + 1;
  const std::size_t domains =
      workers * collector::kMaxSnapshotDomains *
      (kLongestDomain.size() + collector::kMaxSnapshotRates * kLongestRate.size());
  const std::size_t most = kLongestFrame.size() + templates + domains;
  // A margin of 1/64 and 64 KiB, so that a file written by another version of flowd (its
  // structures a little larger or its numbers a little longer) is not refused for a few bytes.
  return most + most / 64 + (64u << 10);
}

std::optional<TemplateFile> read_template_file(const std::string& path, std::size_t max_bytes,
                                               TimePoint now, std::string& error) {
  std::size_t size = 0;
  const UniqueFd fd = open_owned_file_for_reading(path, max_bytes, size, error);
  if (!fd) return std::nullopt;
  // Parsed as it is read, 64 KiB at a time: the file is never held whole beside its entries.
  FileReader reader(fd.get(), size);
  std::istream in(&reader);
  auto file = parse_template_file(in, size, now, error);
  if (reader.failed()) {
    error = std::strerror(reader.failed());
    return std::nullopt;
  }
  return file;
}

std::string write_template_file(const std::string& path,
                                const collector::DecoderSnapshot& snapshot) {
  // Written straight as text, in the form nlohmann's compact dump gives (members in key order, no
  // spaces): a JSON document of the snapshot first took ten times the file in memory (5.5 million
  // fields of 16 bytes each as arrays of three values: 690 MB for the 89 MB file of the bounds'
  // widest templates), every template_save_interval. The capacity reserved is the most these
  // entries can write; what is never written is never touched.
  std::size_t most = kLongestFrame.size();
  for (const auto& t : snapshot.templates)
    most += kLongestTemplate.size() + t.fields.size() * kLongestEnterpriseField.size();
  for (const auto& d : snapshot.domains)
    most += kLongestDomain.size() + d.rates.size() * kLongestRate.size();
  std::string body;
  body.reserve(most);
  auto out = std::back_inserter(body);
  body += R"({"domains":[)";
  for (std::size_t i = 0; i < snapshot.domains.size(); ++i) {
    const auto& d = snapshot.domains[i];
    body += i ? ",{" : "{";
    if (d.default_rate) fmt::format_to(out, R"("default_rate":{},)", *d.default_rate);
    fmt::format_to(out, R"("domain":{},"exporter":"{}","ipfix_version":{},"port":{})",
                   d.owner.domain, d.owner.exporter.to_string(),
                   static_cast<unsigned>(d.owner.version), d.owner.port);
    body += R"(,"rates":[)";
    for (std::size_t r = 0; r < d.rates.size(); ++r)
      fmt::format_to(out, "{}[{},{}]", r ? "," : "", d.rates[r].first, d.rates[r].second);
    fmt::format_to(out, R"(],"seen_ms":{})", to_ms(d.seen));
    if (d.system_init_ms) fmt::format_to(out, R"(,"system_init_ms":{})", *d.system_init_ms);
    body += '}';
  }
  fmt::format_to(out, R"(],"format":"{}","templates":[)", kFormat);
  for (std::size_t i = 0; i < snapshot.templates.size(); ++i) {
    const auto& t = snapshot.templates[i];
    fmt::format_to(out, R"({}{{"domain":{},)", i ? "," : "", t.owner.domain);
    // "exporter", then "fields" before "id", "ipfix_version" and "port".
    fmt::format_to(out, R"("exporter":"{}","fields":[)", t.owner.exporter.to_string());
    for (std::size_t f = 0; f < t.fields.size(); ++f)
      fmt::format_to(out, "{}[{},{},{}]", f ? "," : "", t.fields[f].pen, t.fields[f].id,
                     t.fields[f].length);
    fmt::format_to(out,
                   R"(],"id":{},"ipfix_version":{},"options":{},"port":{},"scope_count":{},)"
                   R"("seen_ms":{}}})",
                   t.id, static_cast<unsigned>(t.owner.version), t.options, t.owner.port,
                   t.scope_count, to_ms(t.seen));
  }
  fmt::format_to(out,
                 R"(],"version":{},"written_ms":{}}})"
                 "\n",
                 kVersion, to_ms(Clock::now()));
  return replace_file_atomically(path, body, 0600);
}

}  // namespace flowd::netflow
