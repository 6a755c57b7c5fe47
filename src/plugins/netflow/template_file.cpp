// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/template_file.hpp"

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

TimePoint from_ms(std::int64_t ms) {
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms))};
}

json owner_json(const collector::SavedOwner& o) {
  return {{"exporter", o.exporter.to_string()},
          {"port", o.port},
          {"ipfix_version", o.version},
          {"domain", o.domain}};
}

// An unsigned integer member of `j` no larger than `max`; nullopt when missing or of another type.
std::optional<std::uint64_t> uint_member(const json& j, const char* name, std::uint64_t max) {
  const auto it = j.find(name);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  const auto v = it->get<std::uint64_t>();
  if (v > max) return std::nullopt;
  return v;
}

// A time in ms since the epoch, 1970..2200: the system clock counts nanoseconds in 64 bits (to
// 2262), so a larger value would overflow when converted.
std::optional<std::int64_t> time_member(const json& j, const char* name) {
  constexpr std::int64_t kMaxMs = 7'258'118'400'000;  // 2200-01-01
  const auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  const auto v = it->get<std::int64_t>();
  if (v < 0 || v > kMaxMs) return std::nullopt;
  return v;
}

std::optional<collector::SavedOwner> owner_of(const json& j) {
  if (!j.is_object()) return std::nullopt;
  const auto ex = j.find("exporter");
  if (ex == j.end() || !ex->is_string()) return std::nullopt;
  auto addr = IpAddress::parse(ex->get<std::string>());
  auto port = uint_member(j, "port", 65535);
  auto version = uint_member(j, "ipfix_version", 255);
  auto domain = uint_member(j, "domain", std::numeric_limits<std::uint32_t>::max());
  if (!addr || !port || !version || !domain) return std::nullopt;
  collector::SavedOwner o;
  o.exporter = *addr;
  o.port = static_cast<std::uint16_t>(*port);
  o.version = static_cast<std::uint8_t>(*version);
  o.domain = static_cast<std::uint32_t>(*domain);
  return o;
}

std::optional<collector::SavedTemplate> template_of(const json& j) {
  auto owner = owner_of(j);
  auto id = uint_member(j, "id", 65535);
  auto scope = uint_member(j, "scope_count", 65535);
  auto seen = time_member(j, "seen_ms");
  const auto options = j.find("options");
  const auto fields = j.find("fields");
  if (!owner || !id || !scope || !seen || options == j.end() || !options->is_boolean() ||
      fields == j.end() || !fields->is_array() || fields->size() > 65535)
    return std::nullopt;
  collector::SavedTemplate t;
  t.owner = *owner;
  t.id = static_cast<std::uint16_t>(*id);
  t.scope_count = static_cast<std::uint16_t>(*scope);
  t.options = options->get<bool>();
  t.seen = from_ms(*seen);
  t.fields.reserve(fields->size());
  for (const auto& f : *fields) {
    if (!f.is_array() || f.size() != 3 || !f[0].is_number_unsigned() ||
        !f[1].is_number_unsigned() || !f[2].is_number_unsigned() ||
        f[0].get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max() ||
        f[1].get<std::uint64_t>() > 65535 || f[2].get<std::uint64_t>() > 65535)
      return std::nullopt;
    t.fields.push_back({static_cast<std::uint32_t>(f[0].get<std::uint64_t>()),
                        static_cast<std::uint16_t>(f[1].get<std::uint64_t>()),
                        static_cast<std::uint16_t>(f[2].get<std::uint64_t>())});
  }
  return t;
}

std::optional<collector::SavedDomain> domain_of(const json& j) {
  auto owner = owner_of(j);
  auto seen = time_member(j, "seen_ms");
  if (!owner || !seen) return std::nullopt;
  collector::SavedDomain d;
  d.owner = *owner;
  d.seen = from_ms(*seen);
  const auto u64 = std::numeric_limits<std::uint64_t>::max();
  if (j.contains("system_init_ms")) {
    d.system_init_ms = uint_member(j, "system_init_ms", u64);
    if (!d.system_init_ms) return std::nullopt;
  }
  if (j.contains("default_rate")) {
    d.default_rate = uint_member(j, "default_rate", u64);
    if (!d.default_rate) return std::nullopt;
  }
  if (const auto rates = j.find("rates"); rates != j.end()) {
    if (!rates->is_array()) return std::nullopt;
    for (const auto& r : *rates) {
      if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() ||
          !r[1].is_number_unsigned())
        return std::nullopt;
      d.rates.emplace_back(r[0].get<std::uint64_t>(), r[1].get<std::uint64_t>());
    }
  }
  return d;
}

}  // namespace

std::string template_file_path(const std::string& work_dir, const std::string& section) {
  if (work_dir.empty()) return {};
  return work_dir + "/templates." + section + ".json";
}

std::optional<collector::DecoderSnapshot> read_template_file(const std::string& path,
                                                             std::string& error) {
  const auto body = read_owned_regular_file(path, kMaxTemplateFileBytes, error);
  if (!body) return std::nullopt;
  return parse_template_file(*body, error);
}

std::optional<collector::DecoderSnapshot> parse_template_file(std::string_view body,
                                                              std::string& error) {
  error.clear();
  const auto j = json::parse(body, nullptr, false);
  const auto not_ours = [&](std::string why) {
    error = "not a flowd template file (" + std::move(why) + ")";
    return std::nullopt;
  };
  if (j.is_discarded()) return not_ours("not JSON");
  // No json::value() here: it throws when the member is there with another type.
  if (!j.is_object() || !j.contains("format") || !j["format"].is_string() ||
      j["format"].get<std::string>() != kFormat)
    return not_ours("no \"format\": \"flowd-templates\"");
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<std::int64_t>() != kVersion)
    return not_ours("a version other than 1");
  const auto templates = j.find("templates");
  const auto domains = j.find("domains");
  if (templates == j.end() || !templates->is_array() || domains == j.end() || !domains->is_array())
    return not_ours("no \"templates\" and \"domains\" arrays");
  collector::DecoderSnapshot s;
  s.templates.reserve(templates->size());
  for (const auto& t : *templates) {
    auto one = template_of(t);
    if (!one)
      return not_ours("template " + std::to_string(s.templates.size() + 1) + " is malformed");
    s.templates.push_back(std::move(*one));
  }
  for (const auto& d : *domains) {
    auto one = domain_of(d);
    if (!one) return not_ours("domain " + std::to_string(s.domains.size() + 1) + " is malformed");
    s.domains.push_back(std::move(*one));
  }
  return s;
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
