// SPDX-License-Identifier: Apache-2.0
// A strict, allocation-free JSON (RFC 8259) scanner that reports values to a handler as it meets
// them, like a SAX parser but with string_views into the input: the firefly listener reads ten
// fields of ~500-byte documents at line rate, which nlohmann::json's lexer (a char-by-char copy of
// every token) cannot do. Input must be valid UTF-8 (checked by the caller). Differential-fuzzed
// against nlohmann::json in tests/fuzz/firefly_fuzz.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flowd::firefly {

struct JsonNumber {
  bool integer = false;  // no fraction or exponent
  bool negative = false;
  bool overflow = false;  // an integer beyond 64 bits
  std::uint64_t magnitude = 0;
};

// Handler: void null(); void boolean(bool); void number(const JsonNumber&); void
// string(std::string_view raw, bool escaped); void start_object(); void key(std::string_view raw,
// bool escaped); void end_object(); void start_array(); void end_array(). `raw` is the text between
// the quotes, escapes not decoded.
template <class Handler>
class JsonScanner {
 public:
  static constexpr unsigned kMaxDepth = 64;

  JsonScanner(std::string_view text, Handler& h) : s_(text), h_(h) {}

  // True when the whole text is one JSON value (surrounded by optional white space).
  bool parse() {
    skip_ws();
    if (!value(0)) return false;
    skip_ws();
    if (pos_ != s_.size()) return fail();
    return true;
  }
  // Where parsing stopped; == text size when the input ended too early.
  std::size_t error_position() const { return error_; }

 private:
  bool fail() {
    error_ = pos_;
    return false;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool u_escape(unsigned& cp) {  // pos_ at the 'u'
    if (s_.size() - pos_ < 5) return pos_ = s_.size(), fail();
    cp = 0;
    for (int i = 1; i <= 4; ++i) {
      int v = hex(s_[pos_ + static_cast<std::size_t>(i)]);
      if (v < 0) return pos_ += static_cast<std::size_t>(i), fail();
      cp = cp << 4 | static_cast<unsigned>(v);
    }
    pos_ += 5;
    return true;
  }
  // pos_ after the opening quote; on success after the closing one.
  bool string(std::string_view& raw, bool& escaped) {
    std::size_t begin = pos_;
    escaped = false;
    while (true) {
      if (at_end()) return fail();
      char c = s_[pos_];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) return fail();
      if (c != '\\') {
        ++pos_;
        continue;
      }
      escaped = true;
      if (++pos_ >= s_.size()) return fail();
      char e = s_[pos_];
      if (e == 'u') {
        unsigned cp;
        if (!u_escape(cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail();  // a low surrogate on its own
        if (cp >= 0xD800 && cp <= 0xDBFF) {               // needs its low half next
          if (s_.size() - pos_ < 2) return pos_ = s_.size(), fail();
          if (s_[pos_] != '\\' || s_[pos_ + 1] != 'u') return fail();
          ++pos_;
          unsigned lo;
          if (!u_escape(lo)) return false;
          if (lo < 0xDC00 || lo > 0xDFFF) return fail();
        }
        continue;
      }
      if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' &&
          e != 't')
        return fail();
      ++pos_;
    }
    raw = s_.substr(begin, pos_ - begin);
    ++pos_;
    return true;
  }
  bool digits(std::size_t& n) {
    std::size_t b = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    n = pos_ - b;
    if (n == 0) return fail();
    return true;
  }
  bool number() {
    JsonNumber n;
    n.integer = true;
    if (s_[pos_] == '-') {
      n.negative = true;
      if (++pos_ >= s_.size()) return fail();
    }
    if (s_[pos_] == '0') {
      ++pos_;
    } else if (s_[pos_] >= '1' && s_[pos_] <= '9') {
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
        auto d = static_cast<std::uint64_t>(s_[pos_] - '0');
        if (n.magnitude > (UINT64_MAX - d) / 10) n.overflow = true;
        n.magnitude = n.magnitude * 10 + d;
        ++pos_;
      }
    } else {
      return fail();
    }
    std::size_t count;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      n.integer = false;
      if (!digits(count)) return false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      n.integer = false;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits(count)) return false;
    }
    h_.number(n);
    return true;
  }
  bool literal(std::string_view word) {
    std::size_t i = 0;
    while (i < word.size() && pos_ < s_.size() && s_[pos_] == word[i]) ++pos_, ++i;
    return i == word.size() || fail();
  }
  bool value(unsigned depth) {
    if (at_end()) return fail();
    switch (s_[pos_]) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"': {
        ++pos_;
        std::string_view raw;
        bool escaped;
        if (!string(raw, escaped)) return false;
        h_.string(raw, escaped);
        return true;
      }
      case 't':
        if (!literal("true")) return false;
        h_.boolean(true);
        return true;
      case 'f':
        if (!literal("false")) return false;
        h_.boolean(false);
        return true;
      case 'n':
        if (!literal("null")) return false;
        h_.null();
        return true;
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return number();
        return fail();
    }
  }
  bool object(unsigned depth) {
    if (depth >= kMaxDepth) return fail();
    ++pos_;
    h_.start_object();
    skip_ws();
    if (!at_end() && s_[pos_] == '}') {
      ++pos_;
      h_.end_object();
      return true;
    }
    while (true) {
      skip_ws();
      if (at_end() || s_[pos_] != '"') return fail();
      ++pos_;
      std::string_view raw;
      bool escaped;
      if (!string(raw, escaped)) return false;
      h_.key(raw, escaped);
      skip_ws();
      if (at_end() || s_[pos_] != ':') return fail();
      ++pos_;
      skip_ws();
      if (!value(depth + 1)) return false;
      skip_ws();
      if (at_end()) return fail();
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] != '}') return fail();
      ++pos_;
      h_.end_object();
      return true;
    }
  }
  bool array(unsigned depth) {
    if (depth >= kMaxDepth) return fail();
    ++pos_;
    h_.start_array();
    skip_ws();
    if (!at_end() && s_[pos_] == ']') {
      ++pos_;
      h_.end_array();
      return true;
    }
    while (true) {
      skip_ws();
      if (!value(depth + 1)) return false;
      skip_ws();
      if (at_end()) return fail();
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] != ']') return fail();
      ++pos_;
      h_.end_array();
      return true;
    }
  }

  std::string_view s_;
  Handler& h_;
  std::size_t pos_ = 0;
  std::size_t error_ = 0;
};

// The text of a JSON string (between the quotes) with its escapes decoded; input already validated.
std::string json_unescape(std::string_view raw);

}  // namespace flowd::firefly
