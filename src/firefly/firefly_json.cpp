// SPDX-License-Identifier: Apache-2.0
#include "firefly/firefly_json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace flowd::firefly {
namespace {

// Length of the JSON number (RFC 8259 grammar) at the start of s, 0 when there is none;
// `integer`: it has neither fraction nor exponent.
std::size_t number_length(std::string_view s, bool& integer) {
  auto digit = [&](std::size_t k) { return k < s.size() && s[k] >= '0' && s[k] <= '9'; };
  std::size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  if (!digit(i)) return 0;
  if (s[i] == '0')
    ++i;
  else
    while (digit(i)) ++i;
  integer = true;
  if (i < s.size() && s[i] == '.') {
    if (!digit(++i)) return 0;
    while (digit(i)) ++i;
    integer = false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return 0;
    while (digit(i)) ++i;
    integer = false;
  }
  return i;
}

// The replacement for a valid number token simdjson refuses, "" when simdjson takes it.
std::string_view wide_replacement(std::string_view token, bool integer) {
  bool negative = token.front() == '-';
  if (integer) {
    // Beyond int64_t below zero, beyond uint64_t above (no leading zeros: the grammar forbids
    // them).
    std::string_view digits = token.substr(negative ? 1 : 0);
    std::string_view limit = negative ? "9223372036854775808" : "18446744073709551615";
    if (digits.size() < limit.size() || (digits.size() == limit.size() && digits <= limit))
      return {};
    return negative ? "-9223372036854775808" : "18446744073709551615";
  }
  if (!std::isinf(std::strtod(std::string(token).c_str(), nullptr))) return {};
  return negative ? "-1e308" : "1e308";
}

bool json_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// nlohmann::json SAX handler that only watches the depth and where parsing stopped.
struct ErrorLocator {
  using json = nlohmann::json;
  std::size_t depth = 0;
  bool root_done = false;  // the first value is complete: what follows is trailing garbage
  bool too_deep = false;
  bool error = false;
  std::size_t position = 0;

  bool scalar() {
    if (depth == 0) root_done = true;
    return true;
  }
  bool open() {
    if (++depth <= kMaxJsonDepth) return true;
    too_deep = true;
    return false;
  }
  bool close() {
    if (--depth == 0) root_done = true;
    return true;
  }
  bool null() { return scalar(); }
  bool boolean(bool) { return scalar(); }
  bool number_integer(json::number_integer_t) { return scalar(); }
  bool number_unsigned(json::number_unsigned_t) { return scalar(); }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(); }
  bool string(json::string_t&) { return scalar(); }
  bool binary(json::binary_t&) { return scalar(); }
  bool start_object(std::size_t) { return open(); }
  bool key(json::string_t&) { return true; }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception&) {
    error = true;
    position = pos;
    return false;
  }
};

}  // namespace

bool widen_numbers(std::string_view text, std::string& out) {
  out.clear();
  bool replaced = false;
  char previous = 0;  // the last character outside strings and blanks
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c == '"') {  // copy the string whole: digits inside it are not numbers
      std::size_t j = i + 1;
      while (j < text.size() && text[j] != '"') j += text[j] == '\\' ? 2 : 1;
      j = std::min(j + 1, text.size());
      out.append(text.substr(i, j - i));
      previous = c;
      i = j;
      continue;
    }
    bool value_position = previous == 0 || previous == ':' || previous == ',' || previous == '[';
    if (value_position && (c == '-' || (c >= '0' && c <= '9'))) {
      bool integer = false;
      std::size_t n = number_length(text.substr(i), integer);
      bool delimited = n > 0 && (i + n == text.size() || json_blank(text[i + n]) ||
                                 text[i + n] == ',' || text[i + n] == ']' || text[i + n] == '}');
      if (delimited) {
        std::string_view token = text.substr(i, n);
        std::string_view wide = wide_replacement(token, integer);
        if (!wide.empty()) {
          out.append(wide);
          out.append(n - wide.size(), ' ');
          replaced = true;
        } else {
          out.append(token);
        }
        previous = '0';
        i += n;
        continue;
      }
    }
    out += c;
    if (!json_blank(c)) previous = c;
    ++i;
  }
  return replaced;
}

JsonErrorSite locate_json_error(std::string_view text) {
  ErrorLocator sax;
  bool ok = nlohmann::json::sax_parse(text.begin(), text.end(), &sax,
                                      nlohmann::json::input_format_t::json, true);
  JsonErrorSite site;
  site.valid = ok;
  site.too_deep = sax.too_deep;
  // nlohmann counts the end of input as one more character read.
  site.at_end = sax.error && !sax.root_done && sax.position > text.size();
  site.offset = sax.error ? std::min(sax.position, text.size() + 1) - 1 : text.size();
  return site;
}

JsonParser::JsonParser() {
  // Room for the largest UDP datagram up front; simdjson grows it (keeping the depth) if needed.
  if (auto e = parser_.allocate(65536, kMaxJsonDepth); e != simdjson::SUCCESS)
    throw std::bad_alloc();
}

JsonResult JsonParser::parse(std::string_view text) {
  JsonResult r;
  auto doc = parser_.parse(text.data(), text.size(), true);
  simdjson::error_code err = doc.error();
  std::string_view parsed = text;
  // simdjson refuses valid JSON numbers it cannot hold; JSON's grammar and Python take them, and an
  // "src-port" of 2^64 is out of range rather than malformed.
  if (err == simdjson::NUMBER_ERROR && widen_numbers(text, widened_)) {
    r.wide_numbers = true;
    parsed = widened_;
    doc = parser_.parse(widened_.data(), widened_.size(), true);
    err = doc.error();
  }
  if (err == simdjson::SUCCESS) {
    r.outcome = JsonOutcome::kOk;
    r.root = doc.value_unsafe();
    return r;
  }
  JsonErrorSite site;
  if (err != simdjson::DEPTH_ERROR) site = locate_json_error(parsed);
  if (err == simdjson::DEPTH_ERROR || site.too_deep) {
    r.detail = fmt::format("JSON nested more than {} deep", kMaxJsonDepth);
  } else if (site.at_end) {
    r.outcome = JsonOutcome::kTruncated;
    r.detail = fmt::format("the JSON ends after {} bytes, incomplete", text.size());
  } else if (site.valid) {
    r.detail = fmt::format("malformed JSON ({})", simdjson::error_message(err));
  } else {
    r.detail =
        fmt::format("malformed JSON at byte {} ({})", site.offset, simdjson::error_message(err));
  }
  return r;
}

}  // namespace flowd::firefly
