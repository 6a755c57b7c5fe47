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

// A field's value as the text the pipe would carry: strings as they are, integers in decimal.
// Names and addresses must be strings; ports, ids and scitag may be either.
bool field_text(std::size_t i, element value, std::string& text) {
  const bool numeric_ok = i == 3 || i == 5 || i == 6 || i == 7 || i == kScitagField;
  switch (value.type()) {
    case element_type::STRING: {
      std::string_view s;
      if (value.get(s)) return false;
      text.assign(s);
      return true;
    }
    case element_type::INT64: {
      std::int64_t n = 0;
      if (!numeric_ok || value.get(n)) return false;
      text = std::to_string(n);
      return true;
    }
    case element_type::UINT64: {
      std::uint64_t n = 0;
      if (!numeric_ok || value.get(n)) return false;
      text = std::to_string(n);
      return true;
    }
    default:
      return false;
  }
}

FlowVerdict parse_flow(element value, const ScitagsRegistry& registry, TimePoint now) {
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
    if (!field_text(i, field, text[i]))
      return refuse(reason_of_field(i),
                    fmt::format("field '{}' must be {}", key,
                                i == 3 || i == 5 || i == 6 || i == 7 || i == kScitagField
                                    ? "a string or an integer"
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
      return refuse(
          Reject::kScitag,
          fmt::format("scitag '{}' is not 0..32767 (experiment << 6 | activity)", s.substr(0, 40)));
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
  if (auto err = parser->parse(body.data(), body.size()).get(root)) {
    req.detail = fmt::format("the body is not JSON: {}", simdjson::error_message(err));
    return req;
  }
  simdjson::dom::array list;
  if (root.type() == element_type::OBJECT) {
    simdjson::dom::object obj;
    if (root.get(obj)) return req;
    // {"flows": [...]} (and nothing else) is a list; any other object is one flow.
    element inner;
    if (obj.size() == 1 && !obj.at_key("flows").get(inner)) {
      if (inner.get(list)) {
        req.detail = "\"flows\" must be an array of flow objects";
        return req;
      }
    } else {
      req.body_ok = true;
      req.flows.push_back(parse_flow(root, registry, now));
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
  for (element e : list) req.flows.push_back(parse_flow(e, registry, now));
  return req;
}

}  // namespace flowd::api
