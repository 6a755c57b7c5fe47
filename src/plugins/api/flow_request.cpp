// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/flow_request.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <array>

#include "common/flow_fields.hpp"

namespace flowd::api {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// The object's fields, in FlowFields order, then scitag.
constexpr std::array<std::string_view, 9> kNames = {"state",      "protocol", "src_ip",
                                                    "src_port",   "dst_ip",   "dst_port",
                                                    "experiment", "activity", "scitag"};
constexpr std::size_t kScitagField = 8;

Reject reason_of(FlowFieldError e) {
  switch (e) {
    case FlowFieldError::kState:
      return Reject::kState;
    case FlowFieldError::kProtocol:
      return Reject::kProtocol;
    case FlowFieldError::kAddress:
      return Reject::kAddress;
    case FlowFieldError::kFamily:
      return Reject::kFamily;
    case FlowFieldError::kPort:
      return Reject::kPort;
    case FlowFieldError::kExperiment:
      return Reject::kExperiment;
    case FlowFieldError::kActivity:
      return Reject::kActivity;
  }
  return Reject::kFields;
}

// The reason a field of the wrong JSON type is refused for: its own.
Reject reason_of_field(std::size_t i) {
  static constexpr std::array<Reject, 9> kReasons = {
      Reject::kState, Reject::kProtocol,   Reject::kAddress,  Reject::kPort,  Reject::kAddress,
      Reject::kPort,  Reject::kExperiment, Reject::kActivity, Reject::kScitag};
  return kReasons[i];
}

FlowVerdict refuse(Reject r, std::string detail) {
  FlowVerdict v;
  v.reason = r;
  v.detail = std::move(detail);
  return v;
}

// Marks a number too large for simdjson that rescue_numbers() made a string (only honoured in a
// rescued body, where it is refused as out of range whatever follows it).
constexpr char kNumberMark = '\0';

bool is_port_field(std::size_t i) {
  return i == 3 || i == 5;
}

enum class FieldText : std::uint8_t { kOk, kWrongType, kOutOfRange };

// A field's value as the text the pipe would carry: strings as they are, integers in decimal.
// Names and addresses must be strings; ports and ids may be either; scitag must be an integer,
// as the transfer tools carry it (a string "144" is refused: the type says what was meant).
FieldText field_text(std::size_t i, element value, bool rescued, std::string& text) {
  const bool numeric_ok = is_port_field(i) || i == 6 || i == 7 || i == kScitagField;
  switch (value.type()) {
    case element_type::STRING: {
      std::string_view s;
      if (value.get(s)) return FieldText::kWrongType;
      if (rescued && !s.empty() && s.front() == kNumberMark) {
        if (!numeric_ok) return FieldText::kWrongType;
        constexpr std::size_t kShow = 40;
        text = fmt::format("{}{}", s.substr(1, kShow), s.size() > kShow + 1 ? "..." : "");
        return FieldText::kOutOfRange;
      }
      if (i == kScitagField) return FieldText::kWrongType;
      text.assign(s);
      return FieldText::kOk;
    }
    case element_type::INT64: {
      std::int64_t n = 0;
      if (!numeric_ok || value.get(n)) return FieldText::kWrongType;
      text = std::to_string(n);
      return FieldText::kOk;
    }
    case element_type::UINT64: {
      std::uint64_t n = 0;
      if (!numeric_ok || value.get(n)) return FieldText::kWrongType;
      text = std::to_string(n);
      return FieldText::kOk;
    }
    default:
      return FieldText::kWrongType;
  }
}

FlowVerdict parse_flow(element value, const ScitagsRegistry& registry, TimePoint now,
                       bool rescued) {
  simdjson::dom::object obj;
  if (value.get(obj)) return refuse(Reject::kFields, "a flow must be a JSON object");
  std::array<std::string, kNames.size()> text;
  std::array<bool, kNames.size()> seen{};
  for (auto [key, field] : obj) {
    std::size_t i = 0;
    while (i < kNames.size() && kNames[i] != key) ++i;
    if (i == kNames.size()) {
      constexpr std::size_t kShow = 40;
      return refuse(Reject::kFields, fmt::format("unknown field '{}'{}", key.substr(0, kShow),
                                                 key.size() > kShow ? "..." : ""));
    }
    if (seen[i]) return refuse(Reject::kFields, fmt::format("field '{}' given twice", key));
    seen[i] = true;
    const FieldText t = field_text(i, field, rescued, text[i]);
    if (t == FieldText::kOutOfRange)
      return refuse(reason_of_field(i),
                    fmt::format("field '{}': {} is out of range", key, text[i]));
    if (t == FieldText::kWrongType)
      return refuse(reason_of_field(i),
                    fmt::format("field '{}' must be {}", key,
                                i == kScitagField ? "an integer (experiment << 6 | activity)"
                                : is_port_field(i) || i == 6 || i == 7 ? "a string or an integer"
                                                                       : "a string"));
  }
  for (std::size_t i = 0; i < 6; ++i)
    if (!seen[i]) return refuse(Reject::kFields, fmt::format("field '{}' is missing", kNames[i]));
  if (seen[kScitagField]) {
    if (seen[6] || seen[7])
      return refuse(Reject::kScitag, "give scitag, or experiment and activity, not both");
    std::int64_t n = -1;
    const auto& s = text[kScitagField];
    bool digits = !s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == s.npos;
    if (digits) n = std::stoll(s);
    auto pair = digits ? split_scitag(n) : std::nullopt;
    if (!pair)
      return refuse(Reject::kScitag,
                    fmt::format("scitag {} is not 0..32767 (experiment << 6 | activity)", s));
    text[6] = std::to_string(pair->experiment);
    text[7] = std::to_string(pair->activity);
  } else {
    for (std::size_t i = 6; i < 8; ++i)
      if (!seen[i])
        return refuse(Reject::kFields,
                      fmt::format("field '{}' is missing (or give scitag)", kNames[i]));
  }
  auto r = parse_flow_fields(
      {text[0], text[1], text[2], text[3], text[4], text[5], text[6], text[7]}, registry, now);
  if (!r.flow) return refuse(reason_of(r.error), std::move(r.detail));
  FlowVerdict v;
  v.flow = std::move(r.flow);
  return v;
}

// One parser per thread (the HTTP workers): simdjson reuses its buffers between documents.
// Its depth limit is set once; a longer body makes it grow its buffers (up to the largest
// max_body the configuration allows).
// The length of the JSON number (RFC 8259 §6) at the start of `s`, or 0 when none is there.
std::size_t json_number_length(std::string_view s) {
  std::size_t i = 0;
  auto digits = [&] {
    std::size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - from;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size()) return 0;
  if (s[i] == '0')
    ++i;
  else if (digits() == 0)
    return 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (digits() == 0) return 0;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return 0;
  }
  return i;
}

// simdjson refuses a whole document for one number it cannot hold (above 64 bits, or beyond a
// double's range), which would blame the body (`json`) for what is one field's value (a port of
// 99999999999999999999). The body again, with every such number (at least 19 characters, or with
// an exponent) made a string that starts with kNumberMark, for field_text() to refuse as out of
// range. Only valid JSON numbers are touched: 0443 stays invalid.
std::string rescue_numbers(std::string_view body) {
  std::string out;
  out.reserve(body.size() + 64);
  bool in_string = false;
  for (std::size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < body.size()) out += body[++i];
      if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      ++i;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      const std::size_t n = json_number_length(body.substr(i));
      const auto token = body.substr(i, n == 0 ? 1 : n);
      if (n >= 19 || (n > 0 && token.find_first_of("eE") != std::string_view::npos)) {
        out += "\"\\u0000";
        out += token;
        out += '"';
      } else {
        out += token;
      }
      i += token.size();
      continue;
    }
    out += c;
    ++i;
  }
  return out;
}

simdjson::dom::parser* thread_parser() {
  thread_local simdjson::dom::parser parser(std::size_t{16} << 20);
  thread_local bool ready = parser.allocate(4096, kMaxDepth) == simdjson::SUCCESS;
  return ready ? &parser : nullptr;
}

}  // namespace

std::string_view to_string(Reject r) {
  switch (r) {
    case Reject::kFields:
      return "fields";
    case Reject::kState:
      return "state";
    case Reject::kProtocol:
      return "protocol";
    case Reject::kAddress:
      return "address";
    case Reject::kFamily:
      return "family";
    case Reject::kPort:
      return "port";
    case Reject::kExperiment:
      return "experiment";
    case Reject::kActivity:
      return "activity";
    case Reject::kScitag:
      return "scitag";
    case Reject::kJson:
      return "json";
    case Reject::kTooLarge:
      return "too_large";
    case Reject::kTooMany:
      return "too_many";
  }
  return "unknown";
}

FlowRequest parse_flow_request(std::string_view body, const ScitagsRegistry& registry,
                               TimePoint now, std::size_t max_flows) {
  FlowRequest req;
  auto* parser = thread_parser();
  if (!parser) {
    req.detail = "cannot allocate the JSON parser";
    return req;
  }
  element root;
  auto err = parser->parse(body.data(), body.size()).get(root);
  std::string rescued;
  if (err == simdjson::NUMBER_ERROR) {
    rescued = rescue_numbers(body);
    if (!parser->parse(rescued.data(), rescued.size()).get(root)) err = simdjson::SUCCESS;
  }
  if (err) {
    req.detail = fmt::format("the body is not JSON: {}", simdjson::error_message(err));
    return req;
  }
  simdjson::dom::array list;
  if (root.type() == element_type::OBJECT) {
    simdjson::dom::object obj;
    if (root.get(obj)) return req;
    // {"flows": [...]} (and nothing else) is a list; any other object is one flow.
    element inner;
    if (!obj.at_key("flows").get(inner)) {
      for (auto [key, value] : obj) {
        if (key == "flows") continue;
        constexpr std::size_t kShow = 40;
        req.detail = fmt::format(
            "unknown key '{}{}' beside \"flows\": a list of flows is {{\"flows\": [...]}} and "
            "nothing else",
            key.substr(0, kShow), key.size() > kShow ? "..." : "");
        return req;
      }
      if (inner.get(list)) {
        req.detail = "\"flows\" must be an array of flow objects";
        return req;
      }
    } else {
      req.body_ok = true;
      req.flows.push_back(parse_flow(root, registry, now, !rescued.empty()));
      return req;
    }
  } else if (root.get(list)) {
    req.detail = "the body must be a flow object, an array of them, or {\"flows\": [...]}";
    return req;
  }
  if (list.size() > max_flows) {
    req.reason = Reject::kTooMany;
    req.detail = fmt::format("{} flows in one request; at most {} ([plugin.api] max_flows)",
                             list.size(), max_flows);
    return req;
  }
  req.body_ok = true;
  req.flows.reserve(list.size());
  for (element e : list) req.flows.push_back(parse_flow(e, registry, now, !rescued.empty()));
  return req;
}

}  // namespace flowd::api
