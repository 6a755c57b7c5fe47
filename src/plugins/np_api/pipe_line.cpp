// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/pipe_line.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

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

bool parse_port(std::string_view s, std::uint16_t& out) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

// Names with spaces ("Data Challenge") cannot be one whitespace-separated field; accept '_' for '
// '.
std::string underscores_to_spaces(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
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
  LineResult res;
  FlowID& flow = res.flow;
  flow.origin = FlowOrigin::kLocal;  // a transfer service on this host reports its own connection
  auto state = parse_flow_state(f[0]);
  if (!state)
    return reject(RejectReason::kState,
                  fmt::format("state '{}' is not start, end or ongoing", f[0]));
  auto prot = parse_protocol(f[1]);
  if (!prot)
    return reject(RejectReason::kProtocol, fmt::format("protocol '{}' is not tcp or udp", f[1]));
  auto src = IpAddress::parse(f[2]);
  if (!src)
    return reject(RejectReason::kAddress, fmt::format("source '{}' is not an IP address", f[2]));
  auto dst = IpAddress::parse(f[4]);
  if (!dst)
    return reject(RejectReason::kAddress,
                  fmt::format("destination '{}' is not an IP address", f[4]));
  if (src->family != dst->family)
    return reject(
        RejectReason::kFamily,
        fmt::format("source {} and destination {} are of different families", f[2], f[4]));
  if (!parse_port(f[3], flow.src_port))
    return reject(RejectReason::kPort, fmt::format("source port '{}' is not 0..65535", f[3]));
  if (!parse_port(f[5], flow.dst_port))
    return reject(RejectReason::kPort, fmt::format("destination port '{}' is not 0..65535", f[5]));
  auto exp = registry.experiment_id(f[6]);
  if (!exp) exp = registry.experiment_id(underscores_to_spaces(f[6]));
  if (!exp)
    return reject(RejectReason::kExperiment,
                  fmt::format("experiment '{}' is neither 0..{} nor a registered name", f[6],
                              kMaxExperiment));
  auto act = registry.activity_id(*exp, f[7]);
  if (!act) act = registry.activity_id(*exp, underscores_to_spaces(f[7]));
  if (!act)
    return reject(RejectReason::kActivity,
                  fmt::format("activity '{}' is neither 0..{} nor an activity of experiment {}",
                              f[7], kMaxActivity, *exp));
  flow.state = *state;
  flow.protocol = *prot;
  flow.src = *src;
  flow.dst = *dst;
  flow.experiment = static_cast<std::uint16_t>(*exp);
  flow.activity = static_cast<std::uint16_t>(*act);
  if (flow.state == FlowState::kStart) flow.start_time = now;
  if (flow.state == FlowState::kEnd) flow.end_time = now;
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
