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

std::string describe_type(const KeySpec& k) {
  switch (k.type) {
    case KeyType::kString: return "a string";
    case KeyType::kInt: return fmt::format("an integer {}..{}", k.min, k.max);
    case KeyType::kBool: return "yes or no";
    case KeyType::kList: return "a comma-separated list";
    case KeyType::kPath: return "a file system path";
    case KeyType::kEndpoint: return "host[:port] (IPv6 as [addr]:port)";
    case KeyType::kMode: return "an octal file mode such as 0666";
    case KeyType::kChoice: return fmt::format("one of {}", k.choices);
    case KeyType::kIPv4: return "an IPv4 address";
    case KeyType::kIPv6: return "an IPv6 address";
  }
  return "a value";
}

Section::Section(std::string name, std::span<const KeySpec> keys,
                 std::map<std::string, std::string> values, std::map<std::string, bool> explicit_keys)
    : name_(std::move(name)), keys_(keys), values_(std::move(values)), explicit_(std::move(explicit_keys)) {}

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
  long out = 0;
  std::from_chars(v.data(), v.data() + v.size(), out);
  return out;
}

bool Section::get_bool(std::string_view key) const {
  bool b = false;
  parse_bool(get(key), b);
  return b;
}

std::vector<std::string> Section::get_list(std::string_view key) const { return split_list(get(key)); }

bool Section::is_set(std::string_view key) const {
  auto it = explicit_.find(std::string(key));
  return it != explicit_.end() && it->second;
}

}  // namespace flowd
