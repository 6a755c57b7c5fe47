// SPDX-License-Identifier: Apache-2.0
// Configuration vocabulary shared by the core and every component: each component declares its keys
// in one KeySpec table; that table drives validation, defaults, --print-config and the README.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace flowd {

enum class KeyType {
  kString,
  kInt,           // integer within [min, max]
  kBool,          // yes/no, true/false, on/off, 1/0
  kList,          // comma separated; an empty item (a,,b, a comma first or last) is refused
  kPath,          // non-empty file system path
  kEndpoint,      // host:port, [v6]:port or a bare host (then the component's default port applies)
  kMode,          // octal file mode such as 0666
  kChoice,        // one of `choices` (comma separated in the spec)
  kIPv4,          // an IPv4 address
  kIPv6,          // an IPv6 address
  kDuration,      // a time span: a plain number of `unit`s, or a number with ms, s, m or h
                  // (parse_duration)
  kEndpointList,  // a kList whose items are each a kEndpoint
};

// kList and kEndpointList: comma separated, continuation lines allowed, read with get_list().
constexpr bool is_list(KeyType t) {
  return t == KeyType::kList || t == KeyType::kEndpointList;
}

// What a plain number means for a kDuration key (each key keeps the unit it had before units were
// accepted), and the finest step its component honours.
enum class DurationUnit : std::uint8_t { kMilliseconds, kSeconds };

struct KeySpec {
  std::string_view name;
  KeyType type;
  std::string_view default_value;  // as written in a config file; "" = unset
  std::string_view help;
  std::string_view legacy = {};  // the Python flowd.cfg name, if any
  long min = 0;                  // kInt: the smallest value; kDuration: in milliseconds
  long max = 0;                  // kInt: the largest value; kDuration: in milliseconds
  std::string_view choices = {};
  // kDuration only: the unit of a plain number, and the finest step accepted (a value must be a
  // whole number of it: a component that counts in seconds is never handed "1500ms").
  DurationUnit unit = DurationUnit::kSeconds;
  DurationUnit resolution = DurationUnit::kSeconds;
  // kPath only: an empty value is a setting ("not pinned", "no cache"), not a mistake.
  bool empty_allowed = false;
  // kString only: `name` ends in '.' and stands for every key that starts with it (the rest of the
  // key is another library's own property name, e.g. `librdkafka.security.protocol`); such keys
  // have no default, are kept as written and are read with Section::with_prefix(). The component
  // checks them (the library says what it refuses).
  bool prefix = false;
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
  Section(std::string name, std::span<const KeySpec> keys,
          std::map<std::string, std::string> values, std::map<std::string, bool> explicit_keys);

  const std::string& name() const { return name_; }
  std::span<const KeySpec> keys() const { return keys_; }
  std::string get(std::string_view key) const;
  // kInt: the value; kDuration: the value in the key's `unit` (a whole number, see
  // KeySpec::resolution).
  long get_int(std::string_view key) const;
  // kDuration keys only.
  std::chrono::milliseconds get_duration(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_list(std::string_view key) const;
  // The keys the file set under a prefix key (KeySpec::prefix), the prefix cut off, in key order:
  // `librdkafka.` -> {"security.protocol": "SASL_SSL", ...}.
  std::map<std::string, std::string> with_prefix(std::string_view prefix) const;
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

// A kDuration value: digits, an optional fraction (".5"), then optionally "ms", "s", "m" or "h"
// (spaces between number and unit allowed); without a unit the number counts `plain`. Examples:
// "500ms", "2s", "1.5m", "1h", "2" (= 2 `plain`). nullopt, with `why` set, for anything else: no
// digits, a sign, a second dot, an unknown unit, a part of a millisecond, or more than a year.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, DurationUnit plain,
                                                        std::string* why = nullptr);
// "1h", "5m", "2s", "500ms", "90s": the largest unit that holds `d` exactly.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace flowd
