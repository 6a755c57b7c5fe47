// SPDX-License-Identifier: Apache-2.0
// UTF-8 well-formedness (RFC 3629 §4), for the two JSON writers of records (flow_record.cpp's DOM,
// record_json_writer.cpp's direct one), which must replace exactly the same bytes with U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace flowd::collector {

// The length (1..4) of the well-formed UTF-8 sequence that starts at in[i], or 0 when the byte
// there starts none: a stray continuation byte, a sequence cut short, an overlong form, a
// surrogate or a code point past U+10FFFF. `i` must be < in.size().
inline std::size_t utf8_sequence_length(const std::string& in, std::size_t i) {
  const auto c = static_cast<unsigned char>(in[i]);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    n = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    cp = c & 0x07;
  }
  if (n == 0 || i + n > in.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(in[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace flowd::collector
