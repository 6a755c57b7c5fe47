// SPDX-License-Identifier: Apache-2.0
// Reading, validating and printing configuration files (INI and legacy Python flowd.cfg).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/component_table.hpp"
#include "flowd/component.hpp"
#include "flowd/config.hpp"

namespace flowd {

// A file as read: sections of key/value strings, nothing validated yet.
struct RawSection {
  std::string name;
  std::vector<std::pair<std::string, std::string>> entries;
};

struct RawConfig {
  std::string path;
  bool legacy = false;
  std::vector<RawSection> sections;
  std::vector<std::string> warnings;

  RawSection& section(std::string_view name);
};

struct PluginConfig {
  const PluginInfo* info;
  Section section;
};
struct BackendConfig {
  const BackendInfo* info;
  Section section;
};

struct Config {
  std::string path;
  bool legacy = false;
  Section core;
  std::vector<PluginConfig> plugins;
  std::vector<BackendConfig> backends;
  std::vector<const BackendInfo*> unlisted_backends;  // the table's others
  std::vector<std::string> warnings;
  std::string ini_equivalent;  // legacy files only: the same configuration as INI
};

// Every function that needs to know which components exist takes the table from the composition
// root (app/components.hpp: component_table()); the daemon layer names no plugin itself.

// A file with no [section] header and UPPER_CASE assignments is a Python flowd.cfg.
bool looks_legacy(std::string_view text);
RawConfig parse_ini(std::string_view text, const std::string& path);
// Legacy keys are mapped to INI sections through the components' KeySpec legacy names.
RawConfig parse_legacy(std::string_view text, const std::string& path,
                       const ComponentTable& components);
// One key of the Python flowd.cfg and what it becomes; the README's legacy table is checked
// against this list (tests/unit/legacy_config_test.cpp).
struct LegacyKey {
  std::string name;    // NETSTAT_EXPERIMENT
  std::string target;  // "[plugin.netstat] experiment"; empty: accepted and ignored
  std::string why;     // ignored keys: the reason the warning gives
};
std::vector<LegacyKey> legacy_keys(const ComponentTable& components);
RawConfig parse_config_text(std::string_view text, const std::string& path,
                            const ComponentTable& components);
RawConfig read_config_file(const std::string& path, const ComponentTable& components);

Config validate_config(const RawConfig& raw, const ComponentTable& components);
Config load_config(const std::string& path, const ComponentTable& components);

// The INI form of a raw config (what --convert-config prints).
std::string to_ini(const RawConfig& raw);
// Effective configuration, defaults filled in (what --print-config prints).
std::string print_config(const Config& c);

// Markdown tables of every key of every component (what the README's reference section holds).
std::string config_reference_markdown(const ComponentTable& components);

// "did you mean" helper: the closest candidate within a small edit distance, or "".
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace flowd
