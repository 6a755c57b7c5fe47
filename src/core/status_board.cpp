// SPDX-License-Identifier: Apache-2.0
#include "core/status_board.hpp"

#include <fmt/format.h>

#include "core/build_info.hpp"

namespace flowd {

StatusBoard::StatusBoard(RegistryHandle& registry) : registry_(registry), started_(Clock::now()) {}

void StatusBoard::record(std::span<const FlowID> flows, const char* plugin) {
  const auto now = Clock::now();
  std::lock_guard lock(flows_mu_);
  for (const auto& f : flows) {
    Key key{FlowKey::of(f), f.origin};
    if (f.state == FlowState::kEnd) {
      flows_.erase(key);
      continue;
    }
    auto [entry, inserted] = flows_.emplace(
        key,
        Entry{f.experiment, f.activity, plugin ? plugin : f.plugin, f.start_time.value_or(now)});
    if (!inserted) {  // a repeated start or an ongoing: the tag may have changed, the start not
      entry->experiment = f.experiment;
      entry->activity = f.activity;
      entry->plugin = plugin ? plugin : f.plugin;
    }
  }
}

void StatusBoard::set_components(std::vector<ComponentRow> rows) {
  std::lock_guard lock(mu_);
  components_ = std::move(rows);
}

void StatusBoard::set_bus_counts(BusCounts counts) {
  std::lock_guard lock(mu_);
  bus_ = std::move(counts);
}

void StatusBoard::set_marker(std::shared_ptr<const MarkerProbe> probe) {
  std::lock_guard lock(mu_);
  marker_ = std::move(probe);
}

void StatusBoard::clear_marker(const MarkerProbe* probe) {
  std::lock_guard lock(mu_);
  if (marker_.get() == probe) marker_.reset();
}

std::shared_ptr<const MarkerProbe> StatusBoard::marker() const {
  std::lock_guard lock(mu_);
  return marker_;
}

DaemonStatusReport StatusBoard::report() const {
  DaemonStatusReport r;
  r.version = fmt::format("{} ({})", FLOWD_VERSION, kBuildCommit);
  r.started = started_;
  std::vector<ComponentRow> rows;
  BusCounts bus;
  {
    std::lock_guard lock(mu_);
    rows = components_;
    bus = bus_;
  }
  for (const auto& row : rows) {
    ComponentStatus c{row.kind, row.name, 0, 0, 0};
    if (row.queue) {
      c.queue_depth = row.queue->size();
      c.queue_capacity = row.queue->capacity();
      if (bus.dropped_for) c.dropped = bus.dropped_for(row.name);
    }
    r.components.push_back(std::move(c));
  }
  if (bus.published) r.events_published = bus.published();
  if (bus.dropped) r.events_dropped = bus.dropped();
  if (auto reg = registry_.get()) {
    r.registry_source = reg->source();
    r.registry_modified = reg->modified();
    r.registry_loaded = registry_.current_at();  // last fetched or confirmed (304) by its source
    r.registry_experiments = reg->experiment_count();
  }
  if (auto probe = marker()) {
    r.marker_running = true;
    r.marker_interfaces = probe->interfaces();
    r.marker_map_entries = probe->entries();
  }
  std::lock_guard lock(flows_mu_);
  r.active_flows = flows_.size();
  r.active_flows_capacity = flows_.capacity();
  r.active_flows_overflow = flows_.overflow();
  return r;
}

std::size_t StatusBoard::active_flow_count() const {
  std::lock_guard lock(flows_mu_);
  return flows_.size();
}

std::vector<ActiveFlow> StatusBoard::active_flows(std::size_t max) const {
  std::vector<ActiveFlow> out;
  {
    std::lock_guard lock(flows_mu_);
    out.reserve(std::min(max, flows_.size()));
    flows_.for_each([&](const Key& k, const Entry& e) {
      if (out.size() >= max) return;
      out.push_back(ActiveFlow{k.flow, k.origin, e.experiment, e.activity, e.plugin, e.start, {}});
    });
  }
  // The marker's map is read outside the table's lock: a lookup is a system call per flow.
  if (auto probe = marker())
    for (auto& f : out) f.marked = probe->holds(f.key);
  return out;
}

}  // namespace flowd
