// SPDX-License-Identifier: Apache-2.0
#include "plugins/firefly/firefly_parser.hpp"

#include "plugins/firefly/json_scan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace flowd::firefly {
namespace {

ParseResult reject(RejectReason r, std::string detail) {
  ParseResult res;
  res.reason = r;
  res.detail = std::move(detail);
  return res;
}

std::string_view trim(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\0'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// A short, printable excerpt of untrusted text for log lines.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  if (s.size() > 40) out += "...";
  return out;
}

bool digits(std::string_view s, std::size_t min, std::size_t max) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// "<PRI>VERSION" with PRI 0..191 and a 1-2 digit version.
bool valid_pri_version(std::string_view t) {
  auto close = t.find('>');
  if (t.size() < 4 || t[0] != '<' || close == std::string_view::npos) return false;
  auto pri = t.substr(1, close - 1), version = t.substr(close + 1);
  if (!digits(pri, 1, 3) || !digits(version, 1, 2)) return false;
  int p = 0;
  for (char c : pri) p = p * 10 + (c - '0');
  return p <= 191;
}

// Splits off the 7 header tokens (single spaces, as the Python original does) and returns the rest.
std::optional<std::string_view> strip_header(std::string_view s, std::string& detail) {
  std::string_view tok[7];
  std::size_t pos = 0;
  for (auto& t : tok) {
    auto sp = s.find(' ', pos);
    if (sp == std::string_view::npos && &t == &tok[6]) sp = s.size();  // a header and nothing else
    if (sp == std::string_view::npos) {
      detail = "syslog header with fewer than 7 tokens before the JSON";
      return std::nullopt;
    }
    t = s.substr(pos, sp - pos);
    pos = std::min(sp + 1, s.size());
  }
  if (!valid_pri_version(tok[0])) {
    detail = fmt::format("syslog PRI/VERSION '{}' is not <0..191>N", excerpt(tok[0]));
    return std::nullopt;
  }
  if (!tok[1].empty() && tok[1] != "-" && !parse_rfc3339(tok[1])) {
    detail =
        fmt::format("syslog TIMESTAMP '{}' is neither '-', empty nor RFC 3339", excerpt(tok[1]));
    return std::nullopt;
  }
  if (tok[5] != "firefly-json") {
    detail = fmt::format("syslog MSGID '{}' is not firefly-json", excerpt(tok[5]));
    return std::nullopt;
  }
  return s.substr(pos);
}

// One JSON value as the scanner reported it; only what the fields below need is kept.
struct Value {
  enum Kind : std::uint8_t {
    kAbsent,
    kNull,
    kBool,
    kNumber,
    kString,
    kObject,
    kArray
  } kind = kAbsent;
  JsonNumber number;
  std::string_view text;  // kString: the value (into the datagram, or into `decoded`)
  std::string decoded;    // a string that had escapes
  const char* type_name() const {
    static constexpr const char* kNames[] = {"absent", "null",   "boolean", "number",
                                             "string", "object", "array"};
    return kNames[kind];
  }
};

// Field slots, by section ("flow-lifecycle", "flow-id", "context") and key.
enum Slot : std::uint8_t {
  kState,
  kStartTime,
  kEndTime,
  kProtocol,
  kSrcIp,
  kDstIp,
  kSrcPort,
  kDstPort,
  kExperiment,
  kActivity,
  kSlotCount
};
enum SectionId : std::uint8_t { kLifecycle, kFlowId, kContext, kSectionCount, kOther = 255 };
constexpr std::string_view kSectionNames[] = {"flow-lifecycle", "flow-id", "context"};
constexpr std::string_view kSlotNames[] = {"state",         "start-time", "end-time", "protocol",
                                           "src-ip",        "dst-ip",     "src-port", "dst-port",
                                           "experiment-id", "activity-id"};
constexpr SectionId kSlotSection[] = {kLifecycle, kLifecycle, kLifecycle, kFlowId,  kFlowId,
                                      kFlowId,    kFlowId,    kFlowId,    kContext, kContext};

// Scanner handler: keeps the fields the listener reads; everything else (usage, netlink,
// application, ...) is checked for syntax and skipped. Duplicate keys: the last one wins.
struct FieldCollector {
  Value sections[kSectionCount];
  Value slots[kSlotCount];
  Value::Kind root = Value::kAbsent;
  std::size_t depth = 0;
  SectionId section = kOther;  // the section object we are in at depth 2
  std::string_view last_key;   // the last key at depth 1 or 2
  std::string key_buf;         // its decoded text, when it had escapes

  Value* target() {
    if (depth == 1) {
      for (std::size_t i = 0; i < kSectionCount; ++i)
        if (last_key == kSectionNames[i]) return &sections[i];
    } else if (depth == 2 && section != kOther) {
      for (std::size_t i = 0; i < kSlotCount; ++i)
        if (kSlotSection[i] == section && last_key == kSlotNames[i]) return &slots[i];
    }
    return nullptr;
  }
  Value* set(Value::Kind k) {
    if (depth == 0) root = k;
    Value* v = target();
    if (v) {
      v->kind = k;
      v->text = {};
    }
    return v;
  }
  void null() { set(Value::kNull); }
  void boolean(bool) { set(Value::kBool); }
  void number(const JsonNumber& n) {
    if (Value* v = set(Value::kNumber)) v->number = n;
  }
  void string(std::string_view raw, bool escaped) {
    if (Value* v = set(Value::kString)) {
      if (escaped) {
        v->decoded = json_unescape(raw);
        v->text = v->decoded;
      } else {
        v->text = raw;
      }
    }
  }
  void start_object() {
    set(Value::kObject);
    if (depth == 1) {
      section = kOther;
      for (std::size_t i = 0; i < kSectionCount; ++i)
        if (last_key == kSectionNames[i]) section = static_cast<SectionId>(i);
    }
    ++depth;
  }
  void end_object() {
    --depth;
    if (depth == 1) section = kOther;
  }
  void start_array() {
    set(Value::kArray);
    ++depth;
    last_key = {};  // array elements have no key
  }
  void end_array() {
    --depth;
    last_key = {};
  }
  void key(std::string_view raw, bool escaped) {
    if (depth > 2) return;
    if (escaped) {
      key_buf = json_unescape(raw);
      last_key = key_buf;
    } else {
      last_key = raw;
    }
  }
};

struct Extractor {
  const FieldCollector& c;
  std::optional<ParseResult> failure;

  void fail(RejectReason r, std::string detail) {
    if (!failure) failure = reject(r, std::move(detail));
  }

  void section(SectionId id) {
    const Value& v = c.sections[id];
    if (v.kind == Value::kAbsent)
      fail(RejectReason::kMissing, fmt::format("no \"{}\" object", kSectionNames[id]));
    else if (v.kind != Value::kObject)
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}, not an object", kSectionNames[id], v.type_name()));
  }

  std::string_view string(Slot s) {
    const Value& v = c.slots[s];
    if (v.kind == Value::kAbsent)
      fail(RejectReason::kMissing, fmt::format("no \"{}\"", kSlotNames[s]));
    else if (v.kind != Value::kString)
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}, not a string", kSlotNames[s], v.type_name()));
    else
      return v.text;
    return {};
  }

  std::uint16_t number(Slot s) {
    const Value& v = c.slots[s];
    const JsonNumber& n = v.number;
    if (v.kind == Value::kAbsent) {
      fail(RejectReason::kMissing, fmt::format("no \"{}\"", kSlotNames[s]));
    } else if (v.kind != Value::kNumber || !n.integer) {
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}{}, not an integer", kSlotNames[s], v.type_name(),
                       v.kind == Value::kNumber ? " with a fraction or exponent" : ""));
    } else if (!n.overflow && (!n.negative || n.magnitude == 0) && n.magnitude <= 65535) {
      return static_cast<std::uint16_t>(n.magnitude);
    } else {
      fail(RejectReason::kRange,
           fmt::format(
               "\"{}\" = {}{} is not 0..65535", kSlotNames[s], n.negative ? "-" : "",
               n.overflow ? std::string("(more than 64 bits)") : std::to_string(n.magnitude)));
    }
    return 0;
  }

  IpAddress address(Slot s) {
    auto text = string(s);
    if (failure) return {};
    auto a = IpAddress::parse(text);
    if (!a)
      fail(RejectReason::kValue,
           fmt::format("\"{}\" '{}' is not an IP address", kSlotNames[s], excerpt(text)));
    return a.value_or(IpAddress{});
  }

  // Absent, null and "" mean "not known" (Python end fireflies carry "start-time": null, flowd-go
  // ones ""), as does Go's zero time.
  std::optional<TimePoint> time(Slot s) {
    const Value& v = c.slots[s];
    if (v.kind == Value::kAbsent || v.kind == Value::kNull) return std::nullopt;
    if (v.kind != Value::kString) {
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}, not a string", kSlotNames[s], v.type_name()));
      return std::nullopt;
    }
    std::string_view str = v.text;
    if (str.empty() || str.starts_with("0001-01-01T00:00:00")) return std::nullopt;
    bool out_of_range = false;
    auto t = parse_rfc3339(str, &out_of_range);
    if (!t)
      fail(out_of_range ? RejectReason::kRange : RejectReason::kValue,
           fmt::format("\"{}\" '{}' is not an RFC 3339 date-time{}", kSlotNames[s], excerpt(str),
                       out_of_range ? " between 1970 and 2200" : ""));
    return t;
  }
};

}  // namespace

std::string json_unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  auto put = [&](unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | cp >> 6);
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | cp >> 18);
      out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  };
  auto hex4 = [&](std::size_t at) {
    unsigned v = 0;
    for (std::size_t k = at; k < at + 4 && k < raw.size(); ++k) {
      char c = raw[k];
      v = v << 4 | static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
  };
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out += raw[i];
      continue;
    }
    char e = raw[++i];
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp = hex4(i + 1);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < raw.size() && raw[i + 1] == '\\') {
          unsigned lo = hex4(i + 3);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        put(cp);
        break;
      }
      default:
        out += e;
        break;  // " \ /
    }
  }
  return out;
}

std::string_view to_string(RejectReason r) {
  switch (r) {
    case RejectReason::kOversized:
      return "oversized";
    case RejectReason::kTruncated:
      return "truncated";
    case RejectReason::kNotUtf8:
      return "not_utf8";
    case RejectReason::kHeader:
      return "header";
    case RejectReason::kJson:
      return "json";
    case RejectReason::kMissing:
      return "missing";
    case RejectReason::kType:
      return "type";
    case RejectReason::kRange:
      return "range";
    case RejectReason::kValue:
      return "value";
    case RejectReason::kNotAllowed:
      return "not_allowed";
  }
  return "unknown";
}

bool is_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // ASCII, 8 bytes at a time: fireflies are all ASCII in practice.
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      if (w & 0x8080808080808080ULL) break;
      p += 8;
    }
    if (p >= end) break;
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0)
      n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0)
      n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0)
      n = 3, cp = c & 0x07;
    else
      return false;
    if (static_cast<std::size_t>(end - p) <= n) return false;
    for (std::size_t i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += n + 1;
  }
  return true;
}

std::optional<TimePoint> parse_rfc3339(std::string_view s, bool* out_of_range) {
  if (out_of_range) *out_of_range = false;
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)
  if (s.size() < 20) return std::nullopt;
  auto num = [&](std::size_t at, std::size_t len, int& out) {
    if (!digits(s.substr(at, len), len, len)) return false;
    out = 0;
    for (std::size_t i = 0; i < len; ++i) out = out * 10 + (s[at + i] - '0');
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, y) || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' || !num(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, h) || s[13] != ':' ||
      !num(14, 2, mi) || s[16] != ':' || !num(17, 2, sec))
    return std::nullopt;
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 ||
      mi > 59 || sec > 60)
    return std::nullopt;
  std::size_t i = 19;
  std::int64_t nanos = 0;
  if (s[i] == '.') {
    std::size_t b = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    std::size_t n = i - b;
    if (n == 0 || n > 9) return std::nullopt;
    for (std::size_t k = 0; k < 9; ++k) nanos = nanos * 10 + (k < n ? s[b + k] - '0' : 0);
  }
  int offset_min = 0;
  auto zone = s.substr(i);
  if (zone == "Z" || zone == "z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!num(i + 1, 2, oh) || !num(i + 4, 2, om) || oh > 23 || om > 59) return std::nullopt;
    offset_min = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (y < 1970 || y > 2200) {
    if (out_of_range) *out_of_range = true;
    return std::nullopt;
  }
  // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
  int yy = mo <= 2 ? y - 1 : y;
  int era = yy / 400;
  int yoe = yy - era * 400;
  int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  using namespace std::chrono;
  return TimePoint(duration_cast<Clock::duration>(seconds(secs) + nanoseconds(nanos)));
}

ParseResult parse_firefly(std::string_view datagram, std::size_t max_size) {
  if (datagram.size() > max_size)
    return reject(RejectReason::kOversized,
                  fmt::format("{} bytes, more than {}", datagram.size(), max_size));
  if (!is_utf8(datagram)) return reject(RejectReason::kNotUtf8, "bytes that are not UTF-8");
  std::string_view s = trim(datagram);
  std::string_view text;
  if (s.empty()) return reject(RejectReason::kHeader, "empty datagram");
  if (s.front() == '{') {
    text = s;
  } else if (s.front() == '<') {
    std::string detail;
    auto rest = strip_header(s, detail);
    if (!rest) return reject(RejectReason::kHeader, std::move(detail));
    text = *rest;
    if (text.empty()) return reject(RejectReason::kTruncated, "nothing after the syslog header");
    if (text.front() != '{')
      return reject(
          RejectReason::kHeader,
          fmt::format("'{}' after the syslog header is not a JSON object", excerpt(text)));
  } else {
    return reject(RejectReason::kHeader,
                  fmt::format("'{}' is neither a syslog header nor a JSON object", excerpt(s)));
  }

  FieldCollector c;
  JsonScanner<FieldCollector> scanner(text, c);
  if (!scanner.parse()) {
    // The scanner stops at the byte it could not take: at the end of the input, the JSON was cut
    // short.
    if (scanner.error_position() >= text.size())
      return reject(RejectReason::kTruncated,
                    fmt::format("the JSON ends after {} bytes, incomplete", text.size()));
    return reject(RejectReason::kJson,
                  fmt::format("malformed JSON at byte {}", scanner.error_position()));
  }
  if (c.root != Value::kObject) {
    Value r;
    r.kind = c.root;
    return reject(RejectReason::kType,
                  fmt::format("the JSON is a {}, not an object", r.type_name()));
  }
  // Key order and spacing do not matter here; only what Python's listener reads does (spec §3).
  Extractor x{c, std::nullopt};
  ParseResult res;
  FlowID& f = res.flow;
  x.section(kLifecycle);
  x.section(kFlowId);
  x.section(kContext);
  if (x.failure) return std::move(*x.failure);
  auto state_text = x.string(kState);
  auto proto_text = x.string(kProtocol);
  f.src = x.address(kSrcIp);
  f.dst = x.address(kDstIp);
  f.src_port = x.number(kSrcPort);
  f.dst_port = x.number(kDstPort);
  f.experiment = x.number(kExperiment);
  f.activity = x.number(kActivity);
  auto start = x.time(kStartTime);
  auto end = x.time(kEndTime);
  if (x.failure) return std::move(*x.failure);
  auto state = parse_flow_state(state_text);
  if (!state)
    return reject(RejectReason::kValue,
                  fmt::format("state '{}' is not start, end or ongoing", excerpt(state_text)));
  auto proto = parse_protocol(proto_text);
  if (!proto)
    return reject(RejectReason::kValue,
                  fmt::format("protocol '{}' is not tcp or udp", excerpt(proto_text)));
  f.state = *state;
  f.protocol = *proto;
  // A start firefly's end-time (flowd-go sends a stale one) means nothing.
  f.start_time = start;
  if (f.state == FlowState::kEnd) f.end_time = end;
  res.ok = true;
  res.json = text;
  return res;
}

}  // namespace flowd::firefly
