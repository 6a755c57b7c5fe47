// SPDX-License-Identifier: Apache-2.0
#include "common/flow_fields.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace flowd {
namespace {

bool parse_port(std::string_view s, std::uint16_t& out) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

FlowFieldsResult refuse(FlowFieldError e, std::string detail) {
  FlowFieldsResult r;
  r.error = e;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

FlowFieldsResult parse_flow_fields(const FlowFields& f, const ScitagsRegistry& registry,
                                   TimePoint now) {
  FlowID flow;
  flow.origin = FlowOrigin::kLocal;
  auto state = parse_flow_state(f.state);
  if (!state)
    return refuse(FlowFieldError::kState,
                  fmt::format("state '{}' is not start, end or ongoing", f.state));
  auto prot = parse_protocol(f.protocol);
  if (!prot)
    return refuse(FlowFieldError::kProtocol,
                  fmt::format("protocol '{}' is not tcp or udp", f.protocol));
  auto src = IpAddress::parse(f.src);
  if (!src)
    return refuse(FlowFieldError::kAddress, fmt::format("source '{}' is not an IP address", f.src));
  auto dst = IpAddress::parse(f.dst);
  if (!dst)
    return refuse(FlowFieldError::kAddress,
                  fmt::format("destination '{}' is not an IP address", f.dst));
  // 0.0.0.0, :: or ::ffff:0.0.0.0 is no connection's end: the fireflies "to the peer" would come
  // back to this host, and the flow journal does not take such a flow back at a restart, so after
  // a kill -9 its end would never be sent (try15i C).
  if (src->is_unspecified())
    return refuse(FlowFieldError::kAddress,
                  fmt::format("source {} is the unspecified address, no connection's end", f.src));
  if (dst->is_unspecified())
    return refuse(
        FlowFieldError::kAddress,
        fmt::format("destination {} is the unspecified address, no connection's end", f.dst));
  if (src->family != dst->family)
    return refuse(
        FlowFieldError::kFamily,
        fmt::format("source {} and destination {} are of different families", f.src, f.dst));
  if (!parse_port(f.src_port, flow.src_port))
    return refuse(FlowFieldError::kPort,
                  fmt::format("source port '{}' is not 0..65535", f.src_port));
  if (!parse_port(f.dst_port, flow.dst_port))
    return refuse(FlowFieldError::kPort,
                  fmt::format("destination port '{}' is not 0..65535", f.dst_port));
  auto exp = registry.experiment_id(f.experiment);
  if (!exp)
    return refuse(FlowFieldError::kExperiment,
                  fmt::format("experiment '{}' is neither 0..{} nor a registered name",
                              f.experiment, kMaxExperiment));
  auto act = registry.activity_id(*exp, f.activity);  // takes '_' for ' ' too
  if (!act)
    return refuse(FlowFieldError::kActivity,
                  fmt::format("activity '{}' is neither 0..{} nor an activity of experiment {}",
                              f.activity, kMaxActivity, *exp));
  flow.state = *state;
  flow.protocol = *prot;
  flow.src = *src;
  flow.dst = *dst;
  flow.experiment = static_cast<std::uint16_t>(*exp);
  flow.activity = static_cast<std::uint16_t>(*act);
  if (flow.state == FlowState::kStart) flow.start_time = now;
  if (flow.state == FlowState::kEnd) flow.end_time = now;
  FlowFieldsResult r;
  r.flow = std::move(flow);
  return r;
}

std::optional<ScitagPair> split_scitag(std::int64_t scitag) {
  constexpr std::int64_t kMax = (std::int64_t{kMaxExperiment} << 6) | kMaxActivity;
  if (scitag < 0 || scitag > kMax) return std::nullopt;
  return ScitagPair{static_cast<unsigned>(scitag >> 6), static_cast<unsigned>(scitag & 63)};
}

}  // namespace flowd
