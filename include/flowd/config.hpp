// SPDX-License-Identifier: Apache-2.0
// Configuration vocabulary shared by the core and every component: each component declares its keys
// in one KeySpec table; that table drives validation, defaults, --print-config and the README.
#pragma once

#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flowd {

enum class KeyType {
  kString,
  kInt,       // integer within [min, max]
  kBool,      // yes/no, true/false, on/off, 1/0
  kList,      // comma separated; empty items dropped
  kPath,      // non-empty file system path
  kEndpoint,  // host:port, [v6]:port or a bare host (then the component's default port applies)
  kMode,      // octal file mode such as 0666
  kChoice,    // one of `choices` (comma separated in the spec)
  kIPv4,      // an IPv4 address
  kIPv6,      // an IPv6 address
};

struct KeySpec {
  std::string_view name;
  KeyType type;
  std::string_view default_value;  // as written in a config file; "" = unset
  std::string_view help;
  std::string_view legacy = {};   // the Python flowd.cfg name, if any
  long min = 0;
  long max = 0;
  std::string_view choices = {};
};

// What a key accepts, in words, for error messages and the README.
std::string describe_type(const KeySpec& k);

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The validated values of one section. Every key of the component's table has a value (its
// default if the file did not set it); accessors therefore never fail for declared keys.
class Section {
 public:
  Section() = default;
  Section(std::string name, std::span<const KeySpec> keys, std::map<std::string, std::string> values,
          std::map<std::string, bool> explicit_keys);

  const std::string& name() const { return name_; }
  std::span<const KeySpec> keys() const { return keys_; }
  std::string get(std::string_view key) const;
  long get_int(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_list(std::string_view key) const;
  // True when the config file set the key (as opposed to the default applying).
  bool is_set(std::string_view key) const;
  const std::map<std::string, std::string>& values() const { return values_; }
  bool operator==(const Section& o) const { return name_ == o.name_ && values_ == o.values_; }

 private:
  const KeySpec& spec(std::string_view key) const;
  std::string name_;
  std::span<const KeySpec> keys_;
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> explicit_;
};

// Parsing helpers shared by validation and components.
bool parse_bool(std::string_view v, bool& out);
std::vector<std::string> split_list(std::string_view v);
std::string trim(std::string_view s);

}  // namespace flowd
