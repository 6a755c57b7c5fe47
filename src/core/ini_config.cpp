// SPDX-License-Identifier: Apache-2.0
// INI files through inih. The distro's libinih is built with INI_MAX_LINE 200 and no line numbers
// in the handler, so long lines are caught here before inih would split them silently.
#include <fmt/format.h>
#include <ini.h>

#include <fstream>
#include <sstream>

#include "core/config_loader.hpp"

namespace flowd {
namespace {

struct IniState {
  RawConfig* raw;
};

int on_ini_entry(void* user, const char* section, const char* name, const char* value) {
  auto* st = static_cast<IniState*>(user);
  st->raw->section(section).entries.emplace_back(name, value);
  return 1;
}

}  // namespace

RawSection& RawConfig::section(std::string_view name) {
  for (auto& s : sections)
    if (s.name == name) return s;
  sections.push_back(RawSection{std::string(name), {}});
  return sections.back();
}

RawConfig parse_ini(std::string_view text, const std::string& path) {
  RawConfig raw;
  raw.path = path;
  // inih reads INI_MAX_LINE-1 characters per line (plus the newline).
  constexpr std::size_t kMaxLine = 198;
  std::size_t line_no = 1, start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '\n') {
      if (i - start > kMaxLine)
        throw ConfigError(fmt::format(
            "{}:{}: line is longer than {} characters; continue long lists on indented lines", path,
            line_no, kMaxLine));
      if (i < text.size() && text.substr(start, i - start).find('\0') != std::string_view::npos)
        throw ConfigError(fmt::format("{}:{}: NUL byte in the file", path, line_no));
      ++line_no;
      start = i + 1;
    }
  }
  if (text.find('\0') != std::string_view::npos)
    throw ConfigError(fmt::format("{}: NUL byte in the file", path));
  std::string copy(text);
  IniState st{&raw};
  int rc = ini_parse_string(copy.c_str(), on_ini_entry, &st);
  if (rc > 0)
    throw ConfigError(
        fmt::format("{}:{}: expected '[section]', 'key = value' or a comment", path, rc));
  if (rc < 0) throw ConfigError(fmt::format("{}: cannot parse (inih error {})", path, rc));
  // Keys before any [section] belong to nothing we know.
  for (const auto& s : raw.sections)
    if (s.name.empty())
      throw ConfigError(
          fmt::format("{}: key '{}' appears before any [section]", path, s.entries.front().first));
  return raw;
}

bool looks_legacy(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  bool assignment = false;
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t[0] == '[') return false;
    auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(std::string_view(t).substr(0, eq));
    bool upper = !key.empty();
    for (char c : key)
      if (!(std::isupper(static_cast<unsigned char>(c)) ||
            std::isdigit(static_cast<unsigned char>(c)) || c == '_'))
        upper = false;
    if (upper) assignment = true;
  }
  return assignment;
}

RawConfig parse_config_text(std::string_view text, const std::string& path,
                            const ComponentTable& components) {
  if (looks_legacy(text)) return parse_legacy(text, path, components);
  return parse_ini(text, path);
}

RawConfig read_config_file(const std::string& path, const ComponentTable& components) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open the configuration file", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  constexpr std::size_t kMaxConfig = 1 << 20;
  if (text.size() > kMaxConfig) throw ConfigError(fmt::format("{}: larger than 1 MiB", path));
  return parse_config_text(text, path, components);
}

}  // namespace flowd
