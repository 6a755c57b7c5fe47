// SPDX-License-Identifier: Apache-2.0
#include "analyze/dump_line.hpp"

#include <fmt/format.h>

#include "flowd/rfc3339.hpp"

namespace flowd::analyze {
namespace {

bool blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

std::string_view type_name(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY:
      return "an array";
    case T::OBJECT:
      return "an object";
    case T::INT64:
    case T::UINT64:
      return "an integer";
    case T::DOUBLE:
      return "a fraction";
    case T::STRING:
      return "a string";
    case T::BOOL:
      return "a boolean";
    case T::NULL_VALUE:
      return "null";
  }
  return "?";
}

// Upper bounds of the unsigned elements whose encodings are narrower than 64 bits.
std::uint64_t max_value(Element e) {
  switch (e) {
    case Element::kSourceTransportPort:
    case Element::kDestinationTransportPort:
      return 0xFFFF;
    case Element::kProtocolIdentifier:
      return 0xFF;
    case Element::kFlowLabelIPv6:
    case Element::kReverseFlowLabelIPv6:
      return 0xFFFFF;
    default:
      return UINT64_MAX;
  }
}

}  // namespace

std::string_view to_string(LineError e) {
  switch (e) {
    case LineError::kTooLong:
      return "too_long";
    case LineError::kJson:
      return "json";
    case LineError::kMissing:
      return "missing";
    case LineError::kType:
      return "type";
    case LineError::kValue:
      return "value";
  }
  return "?";
}

DumpLineParser::DumpLineParser() : parser_(kMaxLineBytes + simdjson::SIMDJSON_PADDING) {}

const ParsedLine& DumpLineParser::malformed(LineError e, std::string detail) {
  result_.outcome = LineOutcome::kMalformed;
  result_.error = e;
  result_.detail = std::move(detail);
  return result_;
}

const ParsedLine& DumpLineParser::parse(std::string_view line, bool padded) {
  result_.outcome = LineOutcome::kBlank;
  result_.received.reset();
  if (blank(line)) return result_;
  if (line.size() > kMaxLineBytes)
    return malformed(LineError::kTooLong,
                     fmt::format("{} bytes, more than {}", line.size(), kMaxLineBytes));

  simdjson::dom::element doc;
  if (auto err = parser_.parse(line.data(), line.size(), !padded).get(doc))
    return malformed(LineError::kJson, simdjson::error_message(err));
  simdjson::dom::object top;
  if (doc.get_object().get(top))
    return malformed(LineError::kType,
                     fmt::format("the line is {}, not an object", type_name(doc.type())));

  simdjson::dom::element member;
  if (!top.at_key("options").get(member)) {
    bool options = false;
    if (member.get_bool().get(options))
      return malformed(LineError::kType,
                       fmt::format("\"options\" is {}, not a boolean", type_name(member.type())));
    if (options) {
      result_.outcome = LineOutcome::kOptions;
      return result_;
    }
  }
  if (!top.at_key("time").get(member)) {
    std::string_view text;
    if (member.get_string().get(text))
      return malformed(LineError::kType,
                       fmt::format("\"time\" is {}, not a string", type_name(member.type())));
    auto t = parse_rfc3339(text);
    if (!t)
      return malformed(LineError::kValue,
                       fmt::format("\"time\" '{}' is not an RFC 3339 time", text.substr(0, 40)));
    result_.received = *t;
  }
  simdjson::dom::object fields;
  if (top.at_key("fields").get(member)) return malformed(LineError::kMissing, "no \"fields\"");
  if (member.get_object().get(fields))
    return malformed(LineError::kType,
                     fmt::format("\"fields\" is {}, not an object", type_name(member.type())));

  builder_.clear();
  for (simdjson::dom::key_value_pair kv : fields) {
    auto e = element_by_name(kv.key);
    if (!e || builder_.has(*e)) continue;
    simdjson::dom::element v = kv.value;
    // A repeated element is written as an array of its values: use the first, as the decoder does.
    if (simdjson::dom::array values; !v.get_array().get(values)) {
      if (values.size() == 0 || values.at(0).get(v) || v.is_array())
        return malformed(
            LineError::kType,
            fmt::format("\"{}\" is an array, not a value or a list of values", kv.key));
    }
    switch (element_type(*e)) {
      case ElementType::kAddress: {
        std::string_view text;
        if (v.get_string().get(text))
          return malformed(LineError::kType, fmt::format("\"{}\" is {}, not an address string",
                                                         kv.key, type_name(v.type())));
        auto a = IpAddress::parse(text);
        const bool want_v4 =
            *e == Element::kSourceIPv4Address || *e == Element::kDestinationIPv4Address;
        if (!a || a->is_v4() != want_v4)
          return malformed(LineError::kValue,
                           fmt::format("\"{}\" '{}' is not an IPv{} address", kv.key,
                                       text.substr(0, 46), want_v4 ? 4 : 6));
        builder_.set_address(*e, *a);
        break;
      }
      case ElementType::kUnsigned: {
        std::uint64_t n = 0;
        if (v.get_uint64().get(n))
          return malformed(LineError::kType,
                           fmt::format("\"{}\" is {}, not an unsigned integer", kv.key,
                                       v.is_int64() ? "negative" : type_name(v.type())));
        if (n > max_value(*e))
          return malformed(LineError::kValue,
                           fmt::format("\"{}\" {} is more than {}", kv.key, n, max_value(*e)));
        builder_.set_unsigned(*e, n);
        break;
      }
      case ElementType::kTime: {
        std::string_view text;
        if (v.get_string().get(text))
          return malformed(LineError::kType, fmt::format("\"{}\" is {}, not a time string", kv.key,
                                                         type_name(v.type())));
        auto t = parse_rfc3339(text);
        if (!t)
          return malformed(LineError::kValue, fmt::format("\"{}\" '{}' is not an RFC 3339 time",
                                                          kv.key, text.substr(0, 40)));
        builder_.set_time(*e, *t);
        break;
      }
    }
  }
  switch (builder_.build(result_.received, result_.flow)) {
    case BuildResult::kOk:
      result_.outcome = LineOutcome::kFlow;
      break;
    case BuildResult::kOptions:
      result_.outcome = LineOutcome::kOptions;
      break;
    case BuildResult::kNoAddresses:
      result_.outcome = LineOutcome::kNoAddresses;
      break;
    case BuildResult::kNoTime:
      return malformed(LineError::kMissing, "neither flow times nor \"time\"");
  }
  return result_;
}

}  // namespace flowd::analyze
