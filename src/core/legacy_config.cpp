// SPDX-License-Identifier: Apache-2.0
// Python flowd.cfg files. The original exec()s them as Python; we read the subset its users write
// (KEY = 'str' | "str" | int | True/False/None | (..)/[..] lists, # comments) and map every key to
// its INI section and name through the components' key tables.
#include <fmt/format.h>

#include <cctype>
#include <optional>

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
      PyValue v = value(false);
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
  PyValue value(bool in_list) {
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
    } else if ((c == '(' || c == '[') && !in_list) {
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
        PyValue item = value(true);
        if (item.kind != PyValue::kNone) v.items.push_back(item.text);
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

std::vector<std::string> all_legacy_names(const ComponentTable& components) {
  std::vector<std::string> names{"PROMETHEUS_SRV_PORT", "PROMETHEUS_SS_PATH"};
  for (const auto& k : core_keys())
    if (!k.legacy.empty()) names.emplace_back(k.legacy);
  for (const auto& p : components.plugins)
    for (const auto& k : p.keys)
      if (!k.legacy.empty()) names.emplace_back(k.legacy);
  for (const auto& b : components.backends)
    for (const auto& k : b.keys)
      if (!k.legacy.empty()) names.emplace_back(k.legacy);
  return names;
}

}  // namespace

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
    // The original reads this undocumented spelling too.
    if (key == "UDP_FIREFLY_WITH_NETLINK") key = "UDP_FIREFLY_NETLINK";
    std::string ini_value = value.to_ini();
    if (key == "PROMETHEUS_SRV_PORT") {
      prometheus_port = ini_value;
      continue;
    }
    if (key == "PROMETHEUS_SS_PATH") {
      raw.warnings.push_back(fmt::format(
          "{}: PROMETHEUS_SS_PATH is ignored: flowd reads TCP details from netlink, not ss", path));
      continue;
    }
    if (auto t = find_legacy_target(key, components)) {
      // The original shipped empty strings for "unset" (UDP_FIREFLY_IP4_SRC='').
      if (value.kind == PyValue::kStr && ini_value.empty()) continue;
      raw.section(t->section).entries.emplace_back(std::string(t->key->name), ini_value);
      continue;
    }
    std::string hint = closest_match(key, all_legacy_names(components));
    raw.warnings.push_back(
        fmt::format("{}: unknown key {} ignored{}", path, key,
                    hint.empty() ? "" : fmt::format(" (did you mean {}?)", hint)));
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
