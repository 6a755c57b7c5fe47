// SPDX-License-Identifier: Apache-2.0
// Validation: raw strings -> typed, checked Sections. Everything is validated before anything is
// constructed, so a bad file (at start or on reload) changes nothing.
#include "core/config_loader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "common/net/endpoint.hpp"
#include "flowd/flow_id.hpp"

namespace flowd {
namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool parse_long(std::string_view v, long& out) {
  std::string t = trim(v);
  if (t.empty()) return false;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  return ec == std::errc() && p == t.data() + t.size();
}

// A list with an empty item ("a,,b", "a, , b", a comma first or last) is a typo or an item left
// out, not a shorter list: refused, naming the key and which item, for every list key alike (no
// key gives an empty item a meaning). An empty value is the empty list. A comma that ends a line
// before a continuation line is the list going on: build_section joins the lines without one.
void refuse_empty_items(const std::string& path, const std::string& section, const KeySpec& k,
                        const std::string& v) {
  if (v.empty()) return;
  const auto items = static_cast<std::size_t>(std::count(v.begin(), v.end(), ',')) + 1;
  std::size_t from = 0;
  for (std::size_t item = 1; item <= items; ++item) {
    const std::size_t comma = std::min(v.find(',', from), v.size());
    if (v.find_first_not_of(" \t", from) >= comma)
      throw ConfigError(fmt::format(
          "{}: [{}] {}: an empty item in \"{}\": item {} of {} is empty (two commas with "
          "nothing between, or a comma first or last); remove the extra comma",
          path, section, k.name, v, item, items));
    from = comma + 1;
  }
}

// Checks one value against its spec; returns the normalised value or throws.
std::string check_value(const std::string& path, const std::string& section, const KeySpec& k,
                        const std::string& value) {
  auto bad = [&]() {
    return ConfigError(fmt::format("{}: [{}] {}: expected {}, got \"{}\"", path, section, k.name,
                                   describe_type(k), value));
  };
  std::string v = trim(value);
  // Values must survive being printed as INI (--print-config, --convert-config) and read back.
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f)
      throw ConfigError(fmt::format("{}: [{}] {}: control character 0x{:02x} in the value", path,
                                    section, k.name, u));
  }
  if (v.find(" ;") != std::string::npos || v.find("\t;") != std::string::npos)
    throw ConfigError(fmt::format("{}: [{}] {}: ' ;' would start a comment in an INI file", path,
                                  section, k.name));
  const std::size_t room = 197 - k.name.size();
  if (is_list(k.type)) {
    for (const auto& item : split_list(v))
      if (item.size() + 4 > 198)
        throw ConfigError(
            fmt::format("{}: [{}] {}: item longer than 194 characters", path, section, k.name));
  } else if (v.size() > room) {
    throw ConfigError(
        fmt::format("{}: [{}] {}: longer than {} characters", path, section, k.name, room));
  }
  switch (k.type) {
    case KeyType::kString:
      return v;
    case KeyType::kInt: {
      long n = 0;
      if (!parse_long(v, n) || n < k.min || n > k.max) throw bad();
      return std::to_string(n);
    }
    case KeyType::kBool: {
      bool b = false;
      if (!parse_bool(v, b)) throw bad();
      return b ? "yes" : "no";
    }
    case KeyType::kList: {
      refuse_empty_items(path, section, k, v);
      auto items = split_list(v);
      std::string out;
      for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
      return out;
    }
    case KeyType::kPath:
      if (v.empty() && !k.empty_allowed) throw bad();
      return v;
    case KeyType::kEndpoint:
      if (v.empty()) return v;
      if (!net::parse_endpoint(v, 1)) throw bad();
      return v;
    case KeyType::kEndpointList: {
      refuse_empty_items(path, section, k, v);
      auto items = split_list(v);
      std::string out;
      for (const auto& i : items) {
        if (!net::parse_endpoint(i, 1)) throw bad();
        out += (out.empty() ? "" : ", ") + i;
      }
      return out;
    }
    case KeyType::kMode: {
      unsigned long m = 0;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), m, 8);
      if (v.empty() || ec != std::errc() || p != v.data() + v.size() || m > 07777) throw bad();
      return fmt::format("{:04o}", m);
    }
    case KeyType::kIPv4:
    case KeyType::kIPv6: {
      if (v.empty()) return v;
      auto a = IpAddress::parse(v);
      if (!a || a->is_v4() != (k.type == KeyType::kIPv4)) throw bad();
      return a->to_string();
    }
    case KeyType::kDuration: {
      std::string why;
      auto d = parse_duration(v, k.unit, &why);
      if (d && k.resolution == DurationUnit::kSeconds && d->count() % 1000 != 0)
        why = "not a whole number of seconds";
      else if (d && (d->count() < k.min || d->count() > k.max))
        why = "out of range";
      else if (d)
        return v;
      throw ConfigError(fmt::format(
          "{}: [{}] {}: expected {}, got \"{}\" ({}); a duration is a number with ms, s, "
          "m or h, such as 500ms, 2s, 5m or 1h",
          path, section, k.name, describe_type(k), value, why));
    }
    case KeyType::kChoice:
      for (const auto& c : split_list(k.choices))
        if (c == v) return v;
      throw bad();
  }
  throw bad();
}

std::vector<std::string> key_names(std::span<const KeySpec> keys) {
  std::vector<std::string> out;
  for (const auto& k : keys) out.emplace_back(k.name);
  return out;
}

Section build_section(const std::string& path, const std::string& name,
                      std::span<const KeySpec> keys, const RawSection* raw) {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> set;
  for (const auto& k : keys) values[std::string(k.name)] = std::string(k.default_value);
  if (raw) {
    for (const auto& [key, value] : raw->entries) {
      auto it = std::find_if(keys.begin(), keys.end(),
                             [&key = key](const KeySpec& k) { return k.name == key; });
      // A prefix key (KeySpec::prefix) takes every longer key that starts with it.
      if (it == keys.end() || it->prefix)
        it = std::find_if(keys.begin(), keys.end(), [&key = key](const KeySpec& k) {
          return k.prefix && key.size() > k.name.size() && key.starts_with(k.name);
        });
      if (it == keys.end()) {
        // A prefix alone ("librdkafka." with nothing after it) names no property of its own.
        auto bare = std::find_if(keys.begin(), keys.end(), [&key = key](const KeySpec& k) {
          return k.prefix && k.name == key;
        });
        if (bare != keys.end())
          throw ConfigError(fmt::format("{}: [{}] '{}' needs a name after it ({}<name> = value)",
                                        path, name, key, key));
        std::string hint = closest_match(key, key_names(keys));
        throw ConfigError(
            fmt::format("{}: [{}] unknown key '{}'{}", path, name, key,
                        hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
      std::string k(key);
      if (set[k]) {
        // inih reports an indented continuation line as the same key again.
        if (!is_list(it->type))
          throw ConfigError(fmt::format("{}: [{}] {} is set more than once", path, name, key));
        // A comma that ends the line before (or starts this one) already separates the items.
        std::string& v = values[k];
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
        // A first line with no item yet (`plugins =`, the items below) adds none of its own.
        const bool separated = v.empty() || v.back() == ',' || trim(value).starts_with(',');
        v += (separated ? (v.empty() ? "" : " ") : ", ") + value;
      } else {
        values[k] = value;
      }
      set[k] = true;
    }
  }
  for (const auto& k : keys) {
    std::string ks(k.name);
    if (k.prefix) {
      values.erase(ks);  // only the keys under it have values
      for (auto& [key, value] : values)
        if (key.size() > ks.size() && key.starts_with(ks)) {
          KeySpec named = k;
          named.name = key;
          value = check_value(path, name, named, value);
        }
      continue;
    }
    if (set[ks] || !values[ks].empty()) values[ks] = check_value(path, name, k, values[ks]);
  }
  return Section(name, keys, std::move(values), std::move(set));
}

}  // namespace

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = 3;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

Config validate_config(const RawConfig& raw, const ComponentTable& components) {
  Config c;
  c.path = raw.path;
  c.legacy = raw.legacy;
  c.warnings = raw.warnings;
  if (raw.legacy) c.ini_equivalent = to_ini(raw);
  const std::string& path = raw.path;

  std::vector<std::string> plugin_names, backend_names;
  for (const auto& p : components.plugins) plugin_names.emplace_back(p.name);
  for (const auto& b : components.backends) backend_names.emplace_back(b.name);

  // Resolve every section header first, so a typo is reported even in an unused section.
  const RawSection* core_raw = nullptr;
  std::map<const PluginInfo*, const RawSection*> plugin_raw;
  std::map<const BackendInfo*, const RawSection*> backend_raw;
  for (const auto& s : raw.sections) {
    auto unknown = [&](std::string_view kind, std::string_view comp,
                       const std::vector<std::string>& names) {
      std::string hint = closest_match(comp, names);
      return ConfigError(fmt::format(
          "{}: [{}] unknown {} '{}'{}; available: {}", path, s.name, kind, comp,
          hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint), fmt::join(names, ", ")));
    };
    if (s.name == "flowd") {
      core_raw = &s;
    } else if (s.name.rfind("plugin.", 0) == 0) {
      auto* info = components.find_plugin(s.name.substr(7));
      if (!info) throw unknown("plugin", s.name.substr(7), plugin_names);
      plugin_raw[info] = &s;
    } else if (s.name.rfind("backend.", 0) == 0) {
      auto* info = components.find_backend(s.name.substr(8));
      if (!info) throw unknown("backend", s.name.substr(8), backend_names);
      backend_raw[info] = &s;
    } else {
      throw ConfigError(
          fmt::format("{}: unknown section [{}]; expected [flowd], [plugin.NAME] or [backend.NAME]",
                      path, s.name));
    }
  }
  c.core = build_section(path, "flowd", core_keys(), core_raw);

  auto plugins = c.core.get_list("plugins");
  if (plugins.empty())
    throw ConfigError(
        fmt::format("{}: [flowd] plugins: expected at least one of {} (legacy PLUGIN)", path,
                    fmt::join(plugin_names, ", ")));
  for (const auto& name : plugins) {
    auto* info = components.find_plugin(name);
    if (!info) {
      std::string hint = closest_match(name, plugin_names);
      throw ConfigError(fmt::format("{}: [flowd] plugins: unknown plugin '{}'{}; available: {}",
                                    path, name,
                                    hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint),
                                    fmt::join(plugin_names, ", ")));
    }
    for (const auto& p : c.plugins)
      if (p.info == info)
        throw ConfigError(fmt::format("{}: [flowd] plugins: '{}' listed twice", path, name));
    auto it = plugin_raw.find(info);
    c.plugins.push_back({info, build_section(path, "plugin." + std::string(info->name), info->keys,
                                             it == plugin_raw.end() ? nullptr : it->second)});
  }
  // The original treats an empty activity as 0, and its config file had to give one; an INI file
  // that leaves the key out gets the same 0, a tag no registry activity has: say so, as the
  // original's missing NETSTAT_ACTIVITY did (try16b F4). `activity =` (empty) or `0` is a choice.
  for (const auto& p : c.plugins) {
    const auto& keys = p.info->keys;
    auto has = [&](std::string_view k) {
      return std::any_of(keys.begin(), keys.end(), [&](const KeySpec& s) { return s.name == k; });
    };
    if (has("experiment") && has("activity") && !p.section.get("experiment").empty() &&
        !p.section.is_set("activity"))
      c.warnings.push_back(fmt::format(
          "{}: [{}] experiment = {} without activity: its connections are tagged activity 0, "
          "which no registry activity is; set activity (a name or an id, or 0 to keep this)",
          path, p.section.name(), p.section.get("experiment")));
  }
  auto backends = c.core.get_list("backends");
  if (backends.empty())
    throw ConfigError(
        fmt::format("{}: [flowd] backends: expected at least one of {} (legacy BACKEND)", path,
                    fmt::join(backend_names, ", ")));
  for (const auto& name : backends) {
    auto* info = components.find_backend(name);
    if (!info) {
      std::string hint = closest_match(name, backend_names);
      throw ConfigError(fmt::format("{}: [flowd] backends: unknown backend '{}'{}; available: {}",
                                    path, name,
                                    hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint),
                                    fmt::join(backend_names, ", ")));
    }
    for (const auto& b : c.backends)
      if (b.info == info)
        throw ConfigError(fmt::format("{}: [flowd] backends: '{}' listed twice", path, name));
    auto it = backend_raw.find(info);
    c.backends.push_back(
        {info, build_section(path, "backend." + std::string(info->name), info->keys,
                             it == backend_raw.end() ? nullptr : it->second)});
  }
  for (const auto& info : components.backends)
    if (std::none_of(c.backends.begin(), c.backends.end(),
                     [&](const BackendConfig& b) { return b.info == &info; }))
      c.unlisted_backends.push_back(&info);
  // Records asked for that nothing decodes: a collector plugin forgotten in [flowd] plugins.
  if (std::none_of(c.plugins.begin(), c.plugins.end(),
                   [](auto& p) { return p.info->offers_records; })) {
    std::vector<std::string_view> collectors;
    for (const auto& info : components.plugins)
      if (info.offers_records) collectors.push_back(info.name);
    for (const auto& b : c.backends)
      if (b.info->takes_records && b.info->takes_records(b.section))
        c.warnings.push_back(fmt::format(
            "{}: [{}] records = yes, but no collector plugin ({}) is in [flowd] plugins: no "
            "decoded record will be published",
            path, b.section.name(), fmt::join(collectors, ", ")));
  }
  // A configured but unlisted component is probably a mistake; still check its keys.
  for (const auto& [info, s] : plugin_raw) {
    build_section(path, s->name, info->keys, s);
    if (std::none_of(c.plugins.begin(), c.plugins.end(),
                     [info = info](auto& p) { return p.info == info; }))
      c.warnings.push_back(fmt::format("{}: [{}] is configured but '{}' is not in [flowd] plugins",
                                       path, s->name, info->name));
  }
  for (const auto& [info, s] : backend_raw) {
    build_section(path, s->name, info->keys, s);
    if (std::none_of(c.backends.begin(), c.backends.end(),
                     [info = info](auto& b) { return b.info == info; }))
      c.warnings.push_back(fmt::format("{}: [{}] is configured but '{}' is not in [flowd] backends",
                                       path, s->name, info->name));
  }
  return c;
}

Config load_config(const std::string& path, const ComponentTable& components) {
  return validate_config(read_config_file(path, components), components);
}

namespace {

// inih takes a ';' or '#' as an inline comment only after white space: "key =;x" keeps ";x" as
// the value, "key = ;x" reads an empty one. A value that starts with one is printed without the
// space so that what is printed reads back as what was read (found by ini_config_fuzz).
bool starts_like_comment(std::string_view v) {
  return !v.empty() && (v.front() == ';' || v.front() == '#');
}

std::string ini_line(std::string_view key, std::string_view value) {
  return starts_like_comment(value) ? fmt::format("{} ={}", key, value)
                                    : fmt::format("{} = {}", key, value);
}

}  // namespace

std::string to_ini(const RawConfig& raw) {
  std::string out = fmt::format("; converted from {}\n", raw.path);
  for (const auto& s : raw.sections) {
    if (s.entries.empty()) continue;
    out += fmt::format("\n[{}]\n", s.name);
    for (const auto& [k, v] : s.entries) out += ini_line(k, v) + "\n";
  }
  return out;
}

std::string print_config(const Config& c) {
  std::string out =
      fmt::format("; effective configuration of {}{}\n", c.path, c.legacy ? " (legacy)" : "");
  auto section = [&out](const Section& s) {
    out += fmt::format("\n[{}]\n", s.name());
    for (const auto& k : s.keys()) {
      if (k.prefix) {
        for (const auto& [rest, v] : s.with_prefix(k.name))
          out += ini_line(std::string(k.name) + rest, v) + "\n";
        continue;
      }
      std::string v = s.get(k.name);
      std::string line = ini_line(k.name, v) + (s.is_set(k.name) ? "" : "    ; default");
      // inih reads at most 198 characters a line: long lists go on continuation lines, unless
      // an item would start a continuation line with a comment character.
      auto items = split_list(v);
      if (line.size() > 198 && is_list(k.type) &&
          std::none_of(items.begin(), items.end(), starts_like_comment)) {
        line = fmt::format("{} =", k.name);
        for (const auto& item : items) line += fmt::format("\n    {}", item);
      } else if (line.size() > 198) {
        line = fmt::format("{}={}", k.name, v);
      }
      out += line + "\n";
    }
  };
  section(c.core);
  for (const auto& p : c.plugins) section(p.section);
  for (const auto& b : c.backends) section(b.section);
  return out;
}

std::string config_reference_markdown(const ComponentTable& components) {
  std::string out;
  auto table = [&out](const std::string& section, std::string_view what,
                      std::span<const KeySpec> keys) {
    out += fmt::format(
        "#### `[{}]`{}\n\n| key | legacy name | default | accepts | meaning "
        "|\n|---|---|---|---|---|\n",
        section, what.empty() ? "" : fmt::format(" — {}", what));
    for (const auto& k : keys)
      out += fmt::format("| `{}{}` | {} | {} | {} | {} |\n", k.name, k.prefix ? "*" : "",
                         k.legacy.empty() ? "" : fmt::format("`{}`", k.legacy),
                         k.default_value.empty() ? "" : fmt::format("`{}`", k.default_value),
                         describe_type(k), k.help);
    out += "\n";
  };
  table("flowd", "the daemon", core_keys());
  for (const auto& p : components.plugins)
    table("plugin." + std::string(p.name), p.description, p.keys);
  for (const auto& b : components.backends)
    table("backend." + std::string(b.name), b.description, b.keys);
  return out;
}

}  // namespace flowd
