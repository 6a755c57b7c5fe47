// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/pipe_line.hpp"

#include <fmt/format.h>

#include <cctype>

#include "common/flow_fields.hpp"

namespace flowd::np_api {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// Splits on any run of whitespace; stops counting after 9 fields (8 are needed).
std::size_t split_fields(std::string_view line, std::array<std::string_view, 9>& f) {
  std::size_t n = 0, i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i >= line.size()) break;
    std::size_t b = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (n == f.size()) return n + 1;
    f[n++] = line.substr(b, i - b);
  }
  return n;
}

RejectReason reason_of(FlowFieldError e) {
  switch (e) {
    case FlowFieldError::kState:
      return RejectReason::kState;
    case FlowFieldError::kProtocol:
      return RejectReason::kProtocol;
    case FlowFieldError::kAddress:
      return RejectReason::kAddress;
    case FlowFieldError::kFamily:
      return RejectReason::kFamily;
    case FlowFieldError::kPort:
      return RejectReason::kPort;
    case FlowFieldError::kExperiment:
      return RejectReason::kExperiment;
    case FlowFieldError::kActivity:
      return RejectReason::kActivity;
  }
  return RejectReason::kFields;
}

LineResult reject(RejectReason r, std::string detail) {
  LineResult res;
  res.reason = r;
  res.detail = std::move(detail);
  return res;
}

}  // namespace

std::string_view to_string(RejectReason r) {
  switch (r) {
    case RejectReason::kFields:
      return "fields";
    case RejectReason::kState:
      return "state";
    case RejectReason::kProtocol:
      return "protocol";
    case RejectReason::kAddress:
      return "address";
    case RejectReason::kFamily:
      return "family";
    case RejectReason::kPort:
      return "port";
    case RejectReason::kExperiment:
      return "experiment";
    case RejectReason::kActivity:
      return "activity";
    case RejectReason::kTooLong:
      return "too_long";
    case RejectReason::kBinary:
      return "binary";
    case RejectReason::kTruncated:
      return "truncated";
  }
  return "unknown";
}

LineResult parse_pipe_line(std::string_view line, const ScitagsRegistry& registry, TimePoint now) {
  for (char c : line) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && !is_space(c)) || u >= 0x7f)
      return reject(RejectReason::kBinary, fmt::format("byte 0x{:02x} is not printable ASCII", u));
  }
  std::array<std::string_view, 9> f;
  std::size_t n = split_fields(line, f);
  if (n != 8)
    return reject(
        RejectReason::kFields,
        fmt::format("{} fields, expected 8: state prot src_ip src_port dst_ip dst_port exp act",
                    n > 8 ? std::string("more than 8") : std::to_string(n)));
  auto fields = parse_flow_fields({f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]}, registry, now);
  if (!fields.flow) return reject(reason_of(fields.error), std::move(fields.detail));
  LineResult res;
  res.flow = std::move(*fields.flow);
  res.ok = true;
  return res;
}

bool has_pipe_line_syntax(std::string_view line) {
  for (char c : line) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && !is_space(c)) || u >= 0x7f) return false;
  }
  std::array<std::string_view, 9> f;
  return split_fields(line, f) == 8 && parse_flow_state(f[0]).has_value();
}

std::size_t find_embedded_line(std::string_view line, const ScitagsRegistry& registry) {
  // A valid line has exactly 8 fields, so an embedded one is the last 8 fields of `line`, its first
  // field being the tail of the 8th field from the end: that field must end in a keyword. At most
  // three candidates, each parsed once, so the cost is linear in the line's length whatever it
  // holds (scanning every keyword-looking offset was quadratic on lines of repeated words).
  std::size_t end = line.size(), field_begin = 0, field_end = 0;
  for (int fields = 0; fields < 8; ++fields) {
    while (end > 0 && is_space(line[end - 1])) --end;
    if (end == 0) return std::string_view::npos;
    field_end = end;
    while (end > 0 && !is_space(line[end - 1])) --end;
    field_begin = end;
  }
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  for (std::string_view kw : {"ongoing", "start", "end"}) {
    if (field_end - field_begin < kw.size()) continue;
    std::size_t at = field_end - kw.size();
    if (at == 0) continue;  // the line itself, which the caller already tried
    bool match = true;
    for (std::size_t k = 0; match && k < kw.size(); ++k) match = lower(line[at + k]) == kw[k];
    if (match && parse_pipe_line(line.substr(at), registry, TimePoint{}).ok) return at;
  }
  return std::string_view::npos;
}

}  // namespace flowd::np_api
