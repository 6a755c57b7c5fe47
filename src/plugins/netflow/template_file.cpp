// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/template_file.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <limits>

#include <nlohmann/json.hpp>

#include "common/owned_file.hpp"

namespace flowd::netflow {
namespace {

using nlohmann::json;

constexpr std::string_view kFormat = "flowd-templates";
constexpr int kVersion = 1;

std::int64_t to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

json owner_json(const collector::SavedOwner& o) {
  return {{"exporter", o.exporter.to_string()},
          {"port", o.port},
          {"ipfix_version", o.version},
          {"domain", o.domain}};
}

}  // namespace

std::string template_file_path(const std::string& work_dir, const std::string& section) {
  if (work_dir.empty()) return {};
  return work_dir + "/templates." + section + ".json";
}

std::size_t max_template_file_bytes(const collector::DecoderLimits& limits, std::size_t workers) {
  // A saved template's JSON is at most ~1.4 times what the budget charges for it (a field: up to 25
  // characters against 12 bytes of specifier and 4 to 8 of raw record; the rest: ~230 characters
  // against ~400 bytes of node, key and ledger), and the file holds each template once, all of them
  // within max_template_bytes. A domain: ~250 characters and 44 per sampler rate, at most
  // kMaxDomains per worker. 1 MiB of slack.
  constexpr std::size_t kDomainBytes = 256 + 256 * 44;
  const std::size_t templates = limits.max_template_bytes / 2 * 3;
  return templates + workers * 1024 * kDomainBytes + (1u << 20);
}

std::optional<TemplateFile> read_template_file(const std::string& path, std::size_t max_bytes,
                                               TimePoint now, std::string& error) {
  const auto body = read_owned_regular_file(path, max_bytes, error);
  if (!body) return std::nullopt;
  return parse_template_file(*body, now, error);
}

std::string write_template_file(const std::string& path,
                                const collector::DecoderSnapshot& snapshot) {
  json templates = json::array();
  for (const auto& t : snapshot.templates) {
    json fields = json::array();
    for (const auto& f : t.fields) fields.push_back({f.pen, f.id, f.length});
    json one = owner_json(t.owner);
    one["id"] = t.id;
    one["options"] = t.options;
    one["scope_count"] = t.scope_count;
    one["seen_ms"] = to_ms(t.seen);
    one["fields"] = std::move(fields);
    templates.push_back(std::move(one));
  }
  json domains = json::array();
  for (const auto& d : snapshot.domains) {
    json one = owner_json(d.owner);
    one["seen_ms"] = to_ms(d.seen);
    if (d.system_init_ms) one["system_init_ms"] = *d.system_init_ms;
    if (d.default_rate) one["default_rate"] = *d.default_rate;
    json rates = json::array();
    for (const auto& [id, rate] : d.rates) rates.push_back({id, rate});
    one["rates"] = std::move(rates);
    domains.push_back(std::move(one));
  }
  const json doc{{"format", kFormat},
                 {"version", kVersion},
                 {"written_ms", to_ms(Clock::now())},
                 {"templates", std::move(templates)},
                 {"domains", std::move(domains)}};
  return replace_file_atomically(path, doc.dump() + "\n", 0600);
}

}  // namespace flowd::netflow
