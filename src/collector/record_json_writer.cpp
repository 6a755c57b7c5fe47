// SPDX-License-Identifier: Apache-2.0
#include "collector/record_json_writer.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "collector/decoder.hpp"
#include "collector/record_json.hpp"
#include "collector/utf8.hpp"

namespace flowd::collector {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

template <typename Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// nlohmann's escaping (serializer::dump_escaped, ensure_ascii off) of text already made valid
// UTF-8 by replacing every byte that does not start a well-formed sequence (overlong forms,
// surrogates and code points past U+10FFFF included) with U+FFFD, as flow_record.cpp's
// valid_utf8() does before the DOM sees the string (both through utf8_sequence_length).
void append_string(std::string& out, const std::string& in) {
  out.push_back('"');
  const std::size_t size = in.size();
  std::size_t i = 0;
  while (i < size) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      // A run of plain ASCII in one append.
      std::size_t j = i + 1;
      while (j < size) {
        const auto d = static_cast<unsigned char>(in[j]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++j;
      }
      out.append(in, i, j - i);
      i = j;
      continue;
    }
    if (c < 0x80) {
      switch (c) {
        case '"':
          out.append("\\\"");
          break;
        case '\\':
          out.append("\\\\");
          break;
        case '\b':
          out.append("\\b");
          break;
        case '\f':
          out.append("\\f");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        default:
          out.append("\\u00");
          out.push_back(kHexDigits[c >> 4]);
          out.push_back(kHexDigits[c & 15]);
      }
      ++i;
      continue;
    }
    if (const std::size_t n = utf8_sequence_length(in, i)) {
      out.append(in, i, n);
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  out.push_back('"');
}

void append_hex(std::string& out, const std::string& bytes, bool colons) {
  out.push_back('"');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (colons && i > 0) out.push_back(':');
    const auto b = static_cast<unsigned char>(bytes[i]);
    const char two[2] = {kHexDigits[b >> 4], kHexDigits[b & 15]};
    out.append(two, 2);
  }
  out.push_back('"');
}

void append_v4(std::string& out, const std::uint8_t* b) {
  // Digit by digit into the string (a to_chars loop into a stack buffer draws a false
  // -Wstringop-overflow from GCC 12 at -O3).
  for (std::size_t i = 0; i < 4; ++i) {
    if (i) out.push_back('.');
    const unsigned v = b[i];
    if (v >= 100) out.push_back(static_cast<char>('0' + v / 100));
    if (v >= 10) out.push_back(static_cast<char>('0' + v / 10 % 10));
    out.push_back(static_cast<char>('0' + v % 10));
  }
}

// glibc's inet_ntop(AF_INET6) without its sprintf per group (most of a record's formatting time
// otherwise): the first longest run of two or more zero groups as "::", groups in lowercase hex
// without leading zeros, and "::a.b.c.d" / "::ffff:a.b.c.d" for IPv4-compatible and -mapped
// addresses, exactly as glibc decides them.
void append_v6(std::string& out, const std::uint8_t* b) {
  std::uint16_t w[8];
  for (std::size_t i = 0; i < 8; ++i)
    w[i] = static_cast<std::uint16_t>(b[2 * i] << 8 | b[2 * i + 1]);
  int best = -1, best_len = 0, cur = -1, cur_len = 0;
  for (int i = 0; i <= 8; ++i) {
    if (i < 8 && w[i] == 0) {
      if (cur < 0) cur = i, cur_len = 0;
      ++cur_len;
    } else if (cur >= 0) {
      if (best < 0 || cur_len > best_len) best = cur, best_len = cur_len;
      cur = -1;
    }
  }
  if (best_len < 2) best = -1;
  for (int i = 0; i < 8; ++i) {
    if (best >= 0 && i >= best && i < best + best_len) {
      if (i == best) out.push_back(':');
      continue;
    }
    if (i) out.push_back(':');
    if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
      append_v4(out, b + 12);
      return;
    }
    bool lead = true;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned d = (w[i] >> shift) & 15;
      if (lead && d == 0 && shift > 0) continue;
      lead = false;
      out.push_back(kHexDigits[d]);
    }
  }
  if (best >= 0 && best + best_len == 8) out.push_back(':');
}

// IpAddress::to_string() without the std::string: "" for a family that is neither.
void append_address(std::string& out, const IpAddress& a) {
  if (a.family == AF_INET)
    append_v4(out, a.bytes.data());
  else if (a.family == AF_INET6)
    append_v6(out, a.bytes.data());
}

void append_time(std::string& out, TimePoint t, TimePrecision p) {
  char buf[kFormattedTimeMax + 2];
  buf[0] = '"';
  std::size_t n = 1 + format_time_to(buf + 1, t, p);
  buf[n++] = '"';
  out.append(buf, n);
}

void append_value(std::string& out, const FieldValue& v) {
  switch (v.kind) {
    case ValueKind::kUnsigned:
      append_int(out, v.u);
      return;
    case ValueKind::kSigned:
      append_int(out, v.i);
      return;
    case ValueKind::kFloat:
      // Rare (no common template carries floats): nlohmann's own shortest round-trip form.
      out += nlohmann::json(v.f).dump();
      return;
    case ValueKind::kBool:
      out.append(v.u != 0 ? "true" : "false");
      return;
    case ValueKind::kIpv4:
    case ValueKind::kIpv6:
      out.push_back('"');
      append_address(out, v.ip);
      out.push_back('"');
      return;
    case ValueKind::kMac:
      append_hex(out, v.bytes, true);
      return;
    case ValueKind::kString:
      append_string(out, v.bytes);
      return;
    case ValueKind::kDateTime:
      append_time(out, v.time, v.precision);
      return;
    case ValueKind::kOctets:
      append_hex(out, v.bytes, false);
      return;
  }
  out.append("null");
}

std::uint64_t id_of(const Field& f) {
  return std::uint64_t{f.pen} << 16 | f.id;
}

}  // namespace

void RecordJsonWriter::build(Layout& l, const FlowRecord& r) {
  const std::size_t n = r.fields.size();
  l.ids.resize(n);
  std::vector<std::string> names(n);
  for (std::size_t i = 0; i < n; ++i) {
    l.ids[i] = id_of(r.fields[i]);
    names[i] = ie_name(r.fields[i].pen, r.fields[i].id);
  }
  l.order.resize(n);
  for (std::size_t i = 0; i < n; ++i) l.order[i] = static_cast<std::uint16_t>(i);
  // std::map<std::string> order (the DOM's), equal names kept in record order (the array's).
  std::stable_sort(l.order.begin(), l.order.end(),
                   [&](std::uint16_t a, std::uint16_t b) { return names[a] < names[b]; });
  l.groups.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& name = names[l.order[i]];
    if (i > 0 && names[l.order[i - 1]] == name) {
      ++l.groups.back().count;
      continue;
    }
    Group g;
    append_string(g.key, name);
    g.key.push_back(':');
    g.first = static_cast<std::uint16_t>(i);
    g.count = 1;
    l.groups.push_back(std::move(g));
  }
}

const RecordJsonWriter::Layout& RecordJsonWriter::layout_of(const FlowRecord& r) {
  auto same = [&](const Layout& l) {
    if (l.ids.size() != r.fields.size()) return false;
    for (std::size_t i = 0; i < l.ids.size(); ++i)
      if (l.ids[i] != id_of(r.fields[i])) return false;
    return true;
  };
  if (used_ > 0 && same(layouts_[last_])) return layouts_[last_];
  for (std::size_t i = 0; i < used_; ++i)
    if (i != last_ && same(layouts_[i])) {
      last_ = i;
      return layouts_[i];
    }
  // A layout not seen lately: take the next slot, round robin.
  const std::size_t slot = used_ < kLayouts ? used_++ : next_;
  next_ = (slot + 1) % kLayouts;
  build(layouts_[slot], r);
  last_ = slot;
  return layouts_[slot];
}

void RecordJsonWriter::append(std::string& out, const FlowRecord& r) {
  // More than 64 Ki fields cannot come from a message (at most 64 KiB) but could from a record
  // built by hand: the order is 16-bit.
  if (r.fields.size() > 0xFFFF) {
    out += to_json(r).dump();
    return;
  }
  if (!exporter_known_ || !(exporter_ == r.exporter)) {
    exporter_text_.clear();
    append_string(exporter_text_, r.exporter.to_string());
    exporter_ = r.exporter;
    exporter_known_ = true;
  }
  const Layout& l = layout_of(r);
  out.append("{\"domain\":");
  append_int(out, r.domain);
  out.append(",\"exporter\":");
  out.append(exporter_text_);
  out.append(",\"fields\":{");
  bool first = true;
  for (const Group& g : l.groups) {
    if (!first) out.push_back(',');
    first = false;
    out.append(g.key);
    if (g.count == 1) {
      append_value(out, r.fields[l.order[g.first]].value);
      continue;
    }
    out.push_back('[');
    for (std::size_t k = 0; k < g.count; ++k) {
      if (k > 0) out.push_back(',');
      append_value(out, r.fields[l.order[g.first + k]].value);
    }
    out.push_back(']');
  }
  out.append(r.options ? "},\"options\":true," : "},\"options\":false,");
  if (r.protocol == ExportProtocol::kSflow) out.append("\"protocol\":\"sflow\",");
  out.append("\"template\":");
  append_int(out, r.template_id);
  out.append(",\"time\":");
  append_time(out, r.received, TimePrecision::kMicroseconds);
  out.append(",\"version\":");
  append_int(out, r.version);
  out.push_back('}');
}

}  // namespace flowd::collector
