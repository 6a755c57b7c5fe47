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

std::optional<TemplateFile> read_template_file(const std::string& path, TimePoint now,
                                               std::string& error) {
  const auto body = read_owned_regular_file(path, kMaxTemplateFileBytes, error);
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
