// SPDX-License-Identifier: Apache-2.0
#include "firefly/firefly_parser.hpp"

#include "firefly/firefly_json.hpp"
#include "firefly/firefly_message.hpp"

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
std::optional<std::string_view> strip_header(std::string_view s, SyslogHeader& header,
                                             std::string& detail) {
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
  if (!tok[1].empty() && tok[1] != "-" && !(header.timestamp = parse_rfc3339(tok[1]))) {
    detail =
        fmt::format("syslog TIMESTAMP '{}' is neither '-', empty nor RFC 3339", excerpt(tok[1]));
    return std::nullopt;
  }
  if (tok[5] != kSyslogMsgId) {
    detail = fmt::format("syslog MSGID '{}' is not {}", excerpt(tok[5]), kSyslogMsgId);
    return std::nullopt;
  }
  header.present = true;
  header.hostname = tok[2];
  header.app_name = tok[3];
  return s.substr(pos);
}

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
enum SectionId : std::uint8_t { kLifecycle, kFlowId, kContext, kSectionCount };
constexpr std::string_view kSectionNames[] = {"flow-lifecycle", "flow-id", "context"};
constexpr std::string_view kSlotNames[] = {"state",         "start-time", "end-time", "protocol",
                                           "src-ip",        "dst-ip",     "src-port", "dst-port",
                                           "experiment-id", "activity-id"};
// Each section's slots are contiguous: [kFirstSlot[section], kFirstSlot[section + 1]).
constexpr std::size_t kFirstSlot[] = {kState, kProtocol, kExperiment, kSlotCount};

// One field of the document, or its absence.
struct Value {
  bool present = false;
  simdjson::dom::element element;
  simdjson::dom::element_type type() const { return element.type(); }
  const char* type_name() const {
    using T = simdjson::dom::element_type;
    if (!present) return "absent";
    switch (type()) {
      case T::ARRAY:
        return "array";
      case T::OBJECT:
        return "object";
      case T::INT64:
      case T::UINT64:
      case T::DOUBLE:
        return "number";
      case T::STRING:
        return "string";
      case T::BOOL:
        return "boolean";
      case T::NULL_VALUE:
        return "null";
    }
    return "value";
  }
};

// The fields the listener reads, one pass over the keys; everything else (usage, netlink,
// application, ...) was validated by simdjson and is skipped. Duplicate keys: the last one wins,
// as in Python's json.loads.
struct Fields {
  Value sections[kSectionCount];
  Value slots[kSlotCount];

  explicit Fields(simdjson::dom::object root) {
    for (auto [key, value] : root)
      for (std::size_t i = 0; i < kSectionCount; ++i)
        if (key == kSectionNames[i]) sections[i] = {true, value};
    for (std::size_t i = 0; i < kSectionCount; ++i) {
      simdjson::dom::object section;
      if (!sections[i].present || sections[i].element.get(section) != simdjson::SUCCESS) continue;
      for (auto [key, value] : section)
        for (std::size_t k = kFirstSlot[i]; k < kFirstSlot[i + 1]; ++k)
          if (key == kSlotNames[k]) {
            slots[k] = {true, value};
            break;
          }
    }
  }
};

struct Extractor {
  const Fields& c;
  bool wide_numbers;  // the parser replaced numbers beyond 64 bits by kWideUnsigned/kWideNegative
  std::optional<ParseResult> failure;

  void fail(RejectReason r, std::string detail) {
    if (!failure) failure = reject(r, std::move(detail));
  }

  void section(SectionId id) {
    const Value& v = c.sections[id];
    if (!v.present)
      fail(RejectReason::kMissing, fmt::format("no \"{}\" object", kSectionNames[id]));
    else if (!v.element.is_object())
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}, not an object", kSectionNames[id], v.type_name()));
  }

  std::string_view string(Slot s) {
    const Value& v = c.slots[s];
    if (!v.present)
      fail(RejectReason::kMissing, fmt::format("no \"{}\"", kSlotNames[s]));
    else if (!v.element.is_string())
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}, not a string", kSlotNames[s], v.type_name()));
    else
      return v.element.get_string().value_unsafe();
    return {};
  }

  std::uint16_t number(Slot s) {
    using T = simdjson::dom::element_type;
    const Value& v = c.slots[s];
    if (!v.present) {
      fail(RejectReason::kMissing, fmt::format("no \"{}\"", kSlotNames[s]));
      return 0;
    }
    std::string text;
    if (v.type() == T::INT64) {
      std::int64_t n = v.element.get_int64().value_unsafe();
      if (n >= 0 && n <= 65535) return static_cast<std::uint16_t>(n);
      text = wide_numbers && n == kWideNegative ? "-(more than 64 bits)" : std::to_string(n);
    } else if (v.type() == T::UINT64) {  // beyond INT64_MAX
      std::uint64_t n = v.element.get_uint64().value_unsafe();
      text = wide_numbers && n == kWideUnsigned ? "(more than 64 bits)" : std::to_string(n);
    } else {
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}{}, not an integer", kSlotNames[s], v.type_name(),
                       v.type() == T::DOUBLE ? " with a fraction or exponent" : ""));
      return 0;
    }
    fail(RejectReason::kRange, fmt::format("\"{}\" = {} is not 0..65535", kSlotNames[s], text));
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
    if (!v.present || v.element.is_null()) return std::nullopt;
    if (!v.element.is_string()) {
      fail(RejectReason::kType,
           fmt::format("\"{}\" is a {}, not a string", kSlotNames[s], v.type_name()));
      return std::nullopt;
    }
    std::string_view str = v.element.get_string().value_unsafe();
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

ParseResult parse_firefly(std::string_view datagram, std::size_t max_size) {
  if (datagram.size() > max_size)
    return reject(RejectReason::kOversized,
                  fmt::format("{} bytes, more than {}", datagram.size(), max_size));
  if (!is_utf8(datagram)) return reject(RejectReason::kNotUtf8, "bytes that are not UTF-8");
  std::string_view s = trim(datagram);
  std::string_view text;
  SyslogHeader header;
  if (s.empty()) return reject(RejectReason::kHeader, "empty datagram");
  if (s.front() == '{') {
    text = s;
  } else if (s.front() == '<') {
    std::string detail;
    auto rest = strip_header(s, header, detail);
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

  // One parser per thread: simdjson keeps its buffers from one firefly to the next.
  thread_local JsonParser json_parser;
  JsonResult doc = json_parser.parse(text);
  if (doc.outcome == JsonOutcome::kTruncated)
    return reject(RejectReason::kTruncated, std::move(doc.detail));
  if (doc.outcome != JsonOutcome::kOk) return reject(RejectReason::kJson, std::move(doc.detail));
  simdjson::dom::object root;
  if (doc.root.get(root) != simdjson::SUCCESS)
    return reject(RejectReason::kType, fmt::format("the JSON is a {}, not an object",
                                                   Value{true, doc.root}.type_name()));
  Fields c(root);
  // Key order and spacing do not matter here; only what Python's listener reads does (spec §3).
  Extractor x{c, doc.wide_numbers, std::nullopt};
  ParseResult res;
  FlowID& f = res.flow;
  f.origin = FlowOrigin::kRemote;  // another host's claim: relayed, never acted on here
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
  res.header = header;
  return res;
}

std::optional<FireflyExtras> read_extras(std::string_view json) {
  thread_local JsonParser json_parser;
  JsonResult doc = json_parser.parse(json);
  simdjson::dom::object root;
  if (doc.outcome != JsonOutcome::kOk || doc.root.get(root) != simdjson::SUCCESS)
    return std::nullopt;
  FireflyExtras out;
  // Absent members are fine; present ones of another type are not (NO_SUCH_FIELD vs
  // INCORRECT_TYPE).
  auto string_at = [](simdjson::simdjson_result<simdjson::dom::element> e, const char* key,
                      std::string& to) {
    std::string_view v;
    auto err = e[key].get(v);
    if (err == simdjson::SUCCESS) to = v;
    return err == simdjson::SUCCESS || err == simdjson::NO_SUCH_FIELD;
  };
  std::int64_t version = 0;
  auto err = root["version"].get(version);
  if (err == simdjson::SUCCESS)
    out.version = version;
  else if (err != simdjson::NO_SUCH_FIELD)
    return std::nullopt;
  std::string now;
  if (!string_at(root["flow-lifecycle"], "current-time", now) ||
      !string_at(root["flow-id"], "afi", out.afi) ||
      !string_at(root["context"], "application", out.application))
    return std::nullopt;
  if (!now.empty() && !(out.current_time = parse_rfc3339(now))) return std::nullopt;
  simdjson::dom::object netlink;
  err = root["netlink"].get(netlink);
  if (err == simdjson::SUCCESS)
    out.netlink = simdjson::minify(netlink);
  else if (err != simdjson::NO_SUCH_FIELD)
    return std::nullopt;
  simdjson::dom::object usage;
  err = root["usage"].get(usage);
  if (err == simdjson::SUCCESS) {
    FireflyUsage u;
    if (usage["received"].get(u.received) != simdjson::SUCCESS ||
        usage["sent"].get(u.sent) != simdjson::SUCCESS)
      return std::nullopt;
    out.usage = u;
  } else if (err != simdjson::NO_SUCH_FIELD) {
    return std::nullopt;
  }
  return out;
}

}  // namespace flowd::firefly
