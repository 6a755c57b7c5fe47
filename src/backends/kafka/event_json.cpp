// SPDX-License-Identifier: Apache-2.0
#include "backends/kafka/event_json.hpp"

#include <fmt/format.h>

#include <iterator>

#include "common/json_text.hpp"

#include "flowd/rfc3339.hpp"

namespace flowd::kafka {
namespace {

void append_time(std::string& out, TimePoint t) {
  char buf[kFormattedTimeMax];
  out.push_back('"');
  out.append(buf, format_time_to(buf, t, TimePrecision::kMicroseconds));
  out.push_back('"');
}

void append_endpoint(std::string& out, const IpAddress& a, std::uint16_t port) {
  if (a.is_v6()) out.push_back('[');
  out += a.to_string();
  if (a.is_v6()) out.push_back(']');
  fmt::format_to(std::back_inserter(out), ":{}", port);
}

}  // namespace

void append_event_json(std::string& out, const FlowID& flow, const ScitagsRegistry& registry,
                       std::string_view hostname, TimePoint now) {
  auto field = [&out](std::string_view name) {
    out += out.back() == '{' ? "\"" : ", \"";
    out += name;
    out += "\": ";
  };
  out.push_back('{');
  field("state");
  append_json_string(out, to_string(flow.state));
  field("origin");
  append_json_string(out, to_string(flow.origin));
  field("plugin");
  append_json_string(out, flow.plugin ? flow.plugin : "");
  field("hostname");
  append_json_string(out, hostname);
  field("time");
  append_time(out, now);
  field("protocol");
  append_json_string(out, to_string(flow.protocol));
  field("src_ip");
  append_json_string(out, flow.src.to_string());
  field("src_port");
  fmt::format_to(std::back_inserter(out), "{}", flow.src_port);
  field("dst_ip");
  append_json_string(out, flow.dst.to_string());
  field("dst_port");
  fmt::format_to(std::back_inserter(out), "{}", flow.dst_port);
  field("experiment");
  fmt::format_to(std::back_inserter(out), "{}", flow.experiment);
  field("activity");
  fmt::format_to(std::back_inserter(out), "{}", flow.activity);
  field("experiment_name");
  append_json_string(out, registry.experiment_name(flow.experiment));
  field("activity_name");
  append_json_string(out, registry.activity_name(flow.experiment, flow.activity));
  // Only where it is one: ids from another site's firefly may not fit 9 + 6 bits.
  if (flow.experiment <= kMaxExperiment && flow.activity <= kMaxActivity) {
    field("scitag");
    fmt::format_to(std::back_inserter(out), "{}", (flow.experiment << 6) | flow.activity);
  }
  if (flow.start_time) {
    field("start_time");
    append_time(out, *flow.start_time);
  }
  if (flow.end_time) {
    field("end_time");
    append_time(out, *flow.end_time);
  }
  // Parsed and checked by the firefly plugin (firefly_json.cpp) before it was published: a JSON
  // object, so it can be embedded as it came.
  if (flow.firefly_json && !flow.firefly_json->empty()) {
    field("firefly");
    out += *flow.firefly_json;
  }
  out.push_back('}');
}

void append_event_key(std::string& out, const FlowID& flow) {
  out += to_string(flow.protocol);
  out.push_back(' ');
  append_endpoint(out, flow.src, flow.src_port);
  out.push_back(' ');
  append_endpoint(out, flow.dst, flow.dst_port);
}

}  // namespace flowd::kafka
