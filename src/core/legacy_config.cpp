// SPDX-License-Identifier: Apache-2.0
// Python flowd.cfg files. The original exec()s them as Python; we read the subset its users write
// (KEY = 'str' | "str" | int | True/False/None | (..)/[..] lists, # comments; a list of tuples,
// `[(2, 9), (3, 3)]` as the original README's IPERF_FLOW_ID, becomes `2:9, 3:3`) and map every key
// to its INI section and name through the components' key tables.
#include <fmt/format.h>

#include <cctype>
#include <optional>
#include <span>

#include "core/config_loader.hpp"

namespace flowd {
namespace {

struct PyValue {
  enum Kind { kStr, kInt, kBool, kNone, kList } kind = kNone;
  std::string text;  // kStr/kInt/kBool: the INI text
  std::vector<std::string> items;
  std::string to_ini() const {
    if (kind != kList) return text;
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
  }
};

class LegacyParser {
 public:
  LegacyParser(std::string_view text, const std::string& path) : s_(text), path_(path) {}

  std::vector<std::pair<std::string, PyValue>> parse() {
    std::vector<std::pair<std::string, PyValue>> out;
    while (true) {
      skip_blank(true);
      if (eof()) break;
      std::string key = identifier();
      if (key.empty()) fail("expected KEY = value");
      skip_blank(false);
      if (eof() || s_[pos_] != '=') fail(fmt::format("expected '=' after {}", key));
      ++pos_;
      skip_blank(false);
      key_ = key;
      PyValue v = value(0);
      skip_blank(false);
      if (!eof() && s_[pos_] == '#') skip_comment();
      if (!eof() && s_[pos_] != '\n') fail(fmt::format("{}: unexpected text after the value", key));
      out.emplace_back(std::move(key), std::move(v));
      key_.clear();
    }
    return out;
  }

 private:
  bool eof() const { return pos_ >= s_.size(); }
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(
        fmt::format("{}:{}: {} (legacy Python flowd.cfg syntax)", path_, line(), what));
  }
  std::size_t line() const {
    std::size_t n = 1;
    for (std::size_t i = 0; i < pos_ && i < s_.size(); ++i) n += s_[i] == '\n';
    return n;
  }
  void skip_comment() {
    while (!eof() && s_[pos_] != '\n') ++pos_;
  }
  void skip_blank(bool newlines) {
    while (!eof()) {
      char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++pos_;
      } else if (newlines && c == '#') {
        skip_comment();
      } else if (c == '\\' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '\n') {
        pos_ += 2;  // explicit line continuation
      } else {
        break;
      }
    }
  }
  std::string identifier() {
    std::size_t b = pos_;
    if (eof() || !(std::isalpha(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      return {};
    while (!eof() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }
  // depth 0: a key's value; 1: a list item; 2: an item of a tuple inside a list.
  PyValue value(int depth) {
    if (eof()) fail(fmt::format("{}: missing value", key_));
    char c = s_[pos_];
    PyValue v;
    if (c == '\'' || c == '"') {
      v.kind = PyValue::kStr;
      v.text = string_literal(c);
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+') {
      std::size_t b = pos_++;
      while (!eof() && (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        ++pos_;
      std::string digits;
      for (char d : s_.substr(b, pos_ - b))
        if (d != '_' && d != '+') digits += d;
      if (digits.empty() || digits == "-") fail(fmt::format("{}: bad number", key_));
      v.kind = PyValue::kInt;
      v.text = digits;
    } else if ((c == '(' || c == '[') && depth < 2) {
      char close = c == '(' ? ')' : ']';
      ++pos_;
      v.kind = PyValue::kList;
      while (true) {
        skip_blank(true);
        if (eof()) fail(fmt::format("{}: list is not closed with '{}'", key_, close));
        if (s_[pos_] == close) {
          ++pos_;
          break;
        }
        PyValue item = value(depth + 1);
        if (item.kind == PyValue::kList) {
          // A pair such as (2, 9) is the EXPERIMENT:ACTIVITY form of flowd's lists.
          std::string joined;
          for (const auto& i : item.items) joined += (joined.empty() ? "" : ":") + i;
          if (!joined.empty()) v.items.push_back(joined);
        } else if (item.kind != PyValue::kNone) {
          v.items.push_back(item.text);
        }
        skip_blank(true);
        if (!eof() && s_[pos_] == ',') {
          ++pos_;
        } else if (eof() || s_[pos_] != close) {
          fail(fmt::format("{}: expected ',' or '{}' in the list", key_, close));
        }
      }
    } else {
      std::string word = identifier();
      if (word == "True" || word == "False") {
        v.kind = PyValue::kBool;
        v.text = word == "True" ? "yes" : "no";
      } else if (word == "None") {
        v.kind = PyValue::kNone;
      } else {
        fail(fmt::format("{}: expected a quoted string, a number, True/False or a (list)", key_));
      }
    }
    return v;
  }
  std::string string_literal(char quote) {
    ++pos_;
    std::string out;
    while (true) {
      if (eof() || s_[pos_] == '\n') fail(fmt::format("{}: string is not closed", key_));
      char c = s_[pos_++];
      if (c == quote) break;
      if (c == '\\' && !eof()) {
        char e = s_[pos_++];
        switch (e) {
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          default:
            out += e;
            break;
        }
        continue;
      }
      out += c;
    }
    return out;
  }

  std::string_view s_;
  const std::string& path_;
  std::size_t pos_ = 0;
  std::string key_;
};

struct Target {
  std::string section;
  const KeySpec* key;
};

std::optional<Target> find_legacy_target(std::string_view legacy,
                                         const ComponentTable& components) {
  for (const auto& k : core_keys())
    if (k.legacy == legacy) return Target{"flowd", &k};
  for (const auto& p : components.plugins)
    for (const auto& k : p.keys)
      if (k.legacy == legacy) return Target{"plugin." + std::string(p.name), &k};
  for (const auto& b : components.backends)
    for (const auto& k : b.keys)
      if (k.legacy == legacy) return Target{"backend." + std::string(b.name), &k};
  return std::nullopt;
}

// Keys the original read that flowd accepts and ignores, with the reason the warning gives.
struct IgnoredKey {
  std::string_view name, why;
};
constexpr IgnoredKey kIgnoredKeys[] = {
    {"PROMETHEUS_SS_PATH", "flowd reads TCP details from netlink, not ss"},
    // The original copied the FlowID's own `netlink` field into the firefly: only its netlink
    // plugin filled it, np_api flows sent null. flowd's flows carry no such field, and turning
    // this into [backend.udp_firefly] netlink = yes would start kernel look-ups the file never
    // asked for (that is UDP_FIREFLY_NETLINK).
    {"UDP_FIREFLY_WITH_NETLINK",
     "it copied the flow's own netlink data, which flowd's flows do not carry; kernel look-ups "
     "are UDP_FIREFLY_NETLINK"},
};

// The original's unpackaged iperf_rr plugin: source ports 5201-5299, these pairs round-robin.
constexpr std::string_view kIperfRrPorts = "5201-5299";
constexpr std::string_view kIperfRrFlowIds = "2:19, 2:19, 3:3, 3:3, 4:3, 4:3, 5:10, 5:10";

const std::string* find_entry(const RawSection& s, std::string_view key) {
  for (const auto& [k, v] : s.entries)
    if (k == key) return &v;
  return nullptr;
}

}  // namespace

std::vector<LegacyKey> legacy_keys(const ComponentTable& components) {
  std::vector<LegacyKey> out;
  auto add = [&](std::string_view section, std::span<const KeySpec> keys) {
    for (const auto& k : keys)
      if (!k.legacy.empty())
        out.push_back({std::string(k.legacy), fmt::format("[{}] {}", section, k.name), ""});
  };
  add("flowd", core_keys());
  for (const auto& p : components.plugins) add("plugin." + std::string(p.name), p.keys);
  for (const auto& b : components.backends) add("backend." + std::string(b.name), b.keys);
  for (const auto& i : kIgnoredKeys) out.push_back({std::string(i.name), "", std::string(i.why)});
  return out;
}

RawConfig parse_legacy(std::string_view text, const std::string& path,
                       const ComponentTable& components) {
  RawConfig raw;
  raw.path = path;
  raw.legacy = true;
  raw.section("flowd");
  auto assignments = LegacyParser(text, path).parse();
  std::optional<std::string> prometheus_port;
  for (auto& [key, value] : assignments) {
    if (value.kind == PyValue::kNone) continue;
    std::string ini_value = value.to_ini();
    if (key == "PROMETHEUS_SRV_PORT") {
      prometheus_port = ini_value;
      continue;
    }
    bool ignored = false;
    for (const auto& i : kIgnoredKeys)
      if (key == i.name) {
        raw.warnings.push_back(fmt::format("{}: {} is ignored: {}", path, key, i.why));
        ignored = true;
      }
    if (ignored) continue;
    if (auto t = find_legacy_target(key, components)) {
      // The original shipped empty strings for "unset" (UDP_FIREFLY_IP4_SRC='').
      if (value.kind == PyValue::kStr && ini_value.empty()) continue;
      raw.section(t->section).entries.emplace_back(std::string(t->key->name), ini_value);
      continue;
    }
    std::vector<std::string> names;
    for (const auto& k : legacy_keys(components)) names.push_back(k.name);
    std::string hint = closest_match(key, names);
    raw.warnings.push_back(
        fmt::format("{}: unknown key {} ignored{}", path, key,
                    hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint)));
  }
  // PLUGIN='iperf_rr' (the original's round-robin variant) is the iperf plugin's port mode.
  bool iperf_rr = false;
  for (auto& [k, v] : raw.section("flowd").entries) {
    if (k != "plugins") continue;
    std::vector<std::string> names = split_list(v);
    bool has_iperf = false;
    for (auto& p : names) {
      has_iperf |= p == "iperf";
      if (p == "iperf_rr") {
        p = "iperf";
        iperf_rr = true;
      }
    }
    if (iperf_rr && has_iperf)
      throw ConfigError(fmt::format(
          "{}: PLUGIN names both iperf and iperf_rr: flowd has one [plugin.iperf] (iperf_rr is "
          "its `ports` mode)",
          path));
    std::string joined;
    for (const auto& p : names) joined += (joined.empty() ? "" : ", ") + p;
    v = joined;
  }
  if (iperf_rr) {
    RawSection& iperf = raw.section("plugin.iperf");
    if (!find_entry(iperf, "ports")) iperf.entries.emplace_back("ports", kIperfRrPorts);
    // IPERF_FLOW_ID, when given, replaces iperf_rr's own list.
    if (!find_entry(iperf, "flow_ids")) iperf.entries.emplace_back("flow_ids", kIperfRrFlowIds);
  }
  // The original's iperf plugin read NETSTAT_INTERNAL_NETWORKS: a legacy file running iperf keeps
  // that.
  std::optional<std::string> netstat_internal;
  for (const auto& sec : raw.sections)
    if (sec.name == "plugin.netstat")
      for (const auto& [nk, nv] : sec.entries)
        if (nk == "internal_networks") netstat_internal = nv;
  for (const auto& [k, v] : raw.section("flowd").entries)
    if (k == "plugins" && netstat_internal)
      for (const auto& p : split_list(v))
        if (p == "iperf")
          raw.section("plugin.iperf").entries.emplace_back("internal_networks", *netstat_internal);
  // The original's exporter listened on every address, port 9000 unless PROMETHEUS_SRV_PORT said
  // so.
  bool has_prometheus = false;
  for (const auto& [k, v] : raw.section("flowd").entries)
    if (k == "backends")
      for (const auto& b : split_list(v))
        if (auto* info = components.find_backend(b); info && info->name == "prometheus")
          has_prometheus = true;
  if (has_prometheus || prometheus_port)
    raw.section("backend.prometheus")
        .entries.emplace_back("listen", "0.0.0.0:" + prometheus_port.value_or("9000"));
  return raw;
}

}  // namespace flowd
