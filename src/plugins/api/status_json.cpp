// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/status_json.hpp"

#include "flowd/rfc3339.hpp"

namespace flowd::api {
namespace {

std::int64_t seconds_between(TimePoint from, TimePoint to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
}

std::string when(TimePoint t) {
  return format_time(t, TimePrecision::kSeconds);
}

}  // namespace

nlohmann::json status_json(const DaemonStatusReport& r, TimePoint now) {
  using nlohmann::json;
  json components = json::array();
  for (const auto& c : r.components) {
    json j{{"kind", c.kind}, {"name", c.name}};
    if (c.kind == "backend") {
      j["queue_depth"] = c.queue_depth;
      j["queue_capacity"] = c.queue_capacity;
      j["dropped"] = c.dropped;
    }
    if (!c.mode.empty()) j["mode"] = c.mode;
    components.push_back(std::move(j));
  }
  json interfaces = json::array();
  for (const auto& i : r.marker_interfaces)
    interfaces.push_back({{"name", i.name}, {"attached", i.attached}});
  return json{
      {"version", r.version},
      {"started", when(r.started)},
      {"uptime_seconds", seconds_between(r.started, now)},
      {"components", std::move(components)},
      {"events", {{"published", r.events_published}, {"dropped", r.events_dropped}}},
      {"registry",
       {{"source", r.registry_source},
        {"modified", r.registry_modified},
        {"loaded", when(r.registry_loaded)},
        {"age_seconds", seconds_between(r.registry_loaded, now)},
        {"experiments", r.registry_experiments}}},
      {"marker",
       {{"running", r.marker_running},
        {"interfaces", std::move(interfaces)},
        {"map_entries", r.marker_map_entries}}},
      {"active_flows",
       {{"count", r.active_flows},
        {"capacity", r.active_flows_capacity},
        {"overflow", r.active_flows_overflow}}},
  };
}

nlohmann::json flows_json(const std::vector<ActiveFlow>& flows, std::size_t total,
                          const ScitagsRegistry& registry) {
  using nlohmann::json;
  json list = json::array();
  for (const auto& f : flows) {
    json j{{"origin", to_string(f.origin)},
           {"plugin", f.plugin},
           {"protocol", to_string(f.key.protocol)},
           {"src_ip", f.key.src.to_string()},
           {"src_port", f.key.src_port},
           {"dst_ip", f.key.dst.to_string()},
           {"dst_port", f.key.dst_port},
           {"experiment", f.experiment},
           {"activity", f.activity},
           {"experiment_name", registry.experiment_name(f.experiment)},
           {"activity_name", registry.activity_name(f.experiment, f.activity)},
           {"start", when(f.start)}};
    // scitag only where it is one: ids from another site's firefly may not fit 9 + 6 bits.
    if (f.experiment <= kMaxExperiment && f.activity <= kMaxActivity)
      j["scitag"] = (f.experiment << 6) | f.activity;
    j["marked"] = f.marked ? json(*f.marked) : json(nullptr);
    list.push_back(std::move(j));
  }
  return json{{"flows", std::move(list)}, {"count", flows.size()}, {"total", total}};
}

}  // namespace flowd::api
