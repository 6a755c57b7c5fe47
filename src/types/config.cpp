// SPDX-License-Identifier: Apache-2.0
#include "flowd/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace flowd {

std::string trim(std::string_view s) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::vector<std::string> split_list(std::string_view v) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= v.size()) {
    std::size_t next = v.find_first_of(",\n", pos);
    if (next == std::string_view::npos) next = v.size();
    auto item = trim(v.substr(pos, next - pos));
    if (!item.empty()) out.push_back(std::move(item));
    pos = next + 1;
  }
  return out;
}

bool parse_bool(std::string_view v, bool& out) {
  std::string s = trim(v);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "yes" || s == "true" || s == "on" || s == "1") {
    out = true;
    return true;
  }
  if (s == "no" || s == "false" || s == "off" || s == "0") {
    out = false;
    return true;
  }
  return false;
}

namespace {

constexpr std::int64_t kUnitMs(DurationUnit u) {
  return u == DurationUnit::kSeconds ? 1000 : 1;
}
// Longer spans are typos; the cap also keeps the arithmetic below far from overflow.
constexpr std::int64_t kMaxDurationMs = 366LL * 24 * 3600 * 1000;

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, DurationUnit plain,
                                                        std::string* why) {
  auto fail = [why](std::string reason) -> std::optional<std::chrono::milliseconds> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  const std::string t = trim(text);
  std::string_view s = t;
  std::size_t i = 0;
  std::int64_t whole = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    whole = whole * 10 + (s[i] - '0');
    if (whole > kMaxDurationMs) return fail("more than a year");
  }
  const std::size_t whole_digits = i;
  std::int64_t frac = 0, frac_scale = 1;
  if (i < s.size() && s[i] == '.') {
    std::size_t b = ++i;
    for (; i < s.size() && is_digit(s[i]); ++i) {
      if (i - b == 9) return fail("more than 9 decimals");
      frac = frac * 10 + (s[i] - '0');
      frac_scale *= 10;
    }
    if (i == b) return fail("no digits after '.'");
  }
  if (whole_digits == 0 && frac_scale == 1) return fail("not a non-negative number");
  std::string_view unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  std::int64_t scale = 0;
  if (unit.empty())
    scale = kUnitMs(plain);
  else if (unit == "ms")
    scale = 1;
  else if (unit == "s")
    scale = 1000;
  else if (unit == "m")
    scale = 60 * 1000;
  else if (unit == "h")
    scale = 3600 * 1000;
  else
    return fail(fmt::format("unknown unit '{}'", unit));
  // whole <= kMaxDurationMs and scale <= 3.6e6, frac < 1e9: no product reaches 2^63.
  const std::int64_t ms = whole * scale;
  if (frac * scale % frac_scale != 0) return fail("not a whole number of milliseconds");
  const std::int64_t total = ms + frac * scale / frac_scale;
  if (total > kMaxDurationMs) return fail("more than a year");
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % (3600 * 1000) == 0) return fmt::format("{}h", ms / (3600 * 1000));
  if (ms != 0 && ms % (60 * 1000) == 0) return fmt::format("{}m", ms / (60 * 1000));
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

std::string describe_type(const KeySpec& k) {
  switch (k.type) {
    case KeyType::kString:
      return "a string";
    case KeyType::kInt:
      return fmt::format("an integer {}..{}", k.min, k.max);
    case KeyType::kBool:
      return "yes or no";
    case KeyType::kList:
      return "a comma-separated list";
    case KeyType::kPath:
      return k.empty_allowed ? "a file system path, or empty" : "a file system path";
    case KeyType::kEndpoint:
      return "host[:port] (IPv6 as [addr]:port)";
    case KeyType::kEndpointList:
      return "a comma-separated list of host[:port] (IPv6 as [addr]:port)";
    case KeyType::kMode:
      return "an octal file mode such as 0666";
    case KeyType::kChoice:
      return fmt::format("one of {}", k.choices);
    case KeyType::kIPv4:
      return "an IPv4 address";
    case KeyType::kIPv6:
      return "an IPv6 address";
    case KeyType::kDuration:
      return fmt::format("a duration {}..{}{}; a plain number is {}",
                         format_duration(std::chrono::milliseconds(k.min)),
                         format_duration(std::chrono::milliseconds(k.max)),
                         k.resolution == DurationUnit::kSeconds ? " in whole seconds" : "",
                         k.unit == DurationUnit::kSeconds ? "seconds" : "milliseconds");
  }
  return "a value";
}

Section::Section(std::string name, std::span<const KeySpec> keys,
                 std::map<std::string, std::string> values,
                 std::map<std::string, bool> explicit_keys)
    : name_(std::move(name)),
      keys_(keys),
      values_(std::move(values)),
      explicit_(std::move(explicit_keys)) {}

const KeySpec& Section::spec(std::string_view key) const {
  for (const auto& k : keys_)
    if (k.name == key) return k;
  throw std::logic_error(fmt::format("[{}] has no key '{}' in its table", name_, key));
}

std::string Section::get(std::string_view key) const {
  spec(key);
  auto it = values_.find(std::string(key));
  return it == values_.end() ? std::string() : it->second;
}

long Section::get_int(std::string_view key) const {
  std::string v = get(key);
  if (const KeySpec& k = spec(key); k.type == KeyType::kDuration)
    return static_cast<long>(
        parse_duration(v, k.unit).value_or(std::chrono::milliseconds(0)).count() / kUnitMs(k.unit));
  long out = 0;
  std::from_chars(v.data(), v.data() + v.size(), out);
  return out;
}

std::chrono::milliseconds Section::get_duration(std::string_view key) const {
  const KeySpec& k = spec(key);
  if (k.type != KeyType::kDuration)
    throw std::logic_error(fmt::format("[{}] {} is not a duration key", name_, key));
  return parse_duration(get(key), k.unit).value_or(std::chrono::milliseconds(0));
}

bool Section::get_bool(std::string_view key) const {
  bool b = false;
  parse_bool(get(key), b);
  return b;
}

std::vector<std::string> Section::get_list(std::string_view key) const {
  return split_list(get(key));
}

std::map<std::string, std::string> Section::with_prefix(std::string_view prefix) const {
  if (!spec(prefix).prefix)
    throw std::logic_error(fmt::format("[{}] {} is not a prefix key", name_, prefix));
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : values_)
    if (k.size() > prefix.size() && k.starts_with(prefix)) out.emplace(k.substr(prefix.size()), v);
  return out;
}

bool Section::is_set(std::string_view key) const {
  auto it = explicit_.find(std::string(key));
  return it != explicit_.end() && it->second;
}

}  // namespace flowd
