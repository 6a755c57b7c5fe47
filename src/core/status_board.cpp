// SPDX-License-Identifier: Apache-2.0
#include "core/status_board.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "core/build_info.hpp"

namespace flowd {
namespace {

FlowKey without_source(const FlowKey& k) {
  FlowKey s = k;
  s.src = IpAddress{};
  return s;
}

}  // namespace

template <typename Table>
StatusBoard::ReportedCheck::ReportedCheck(const Table& flows, const std::vector<ActiveFlow>& kept) {
  // The marker keys a flow without its source: a UDP flow it kept has none ("::"), while a
  // plugin's report of the same flow (restored from the flow journal at a start) has one.
  if (std::none_of(kept.begin(), kept.end(),
                   [](const ActiveFlow& f) { return f.key.src.is_unspecified(); }))
    return;
  flows.for_each([&](const Key& k, const Entry&) {
    if (k.origin == FlowOrigin::kLocal) sourceless_.insert(without_source(k.flow));
  });
}

bool StatusBoard::ReportedCheck::sourceless(const ActiveFlow& kept) const {
  return kept.key.src.is_unspecified() && sourceless_.contains(without_source(kept.key));
}

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

void StatusBoard::set_mode(const char* plugin, std::string mode) {
  std::lock_guard lock(mu_);
  modes_[plugin] = std::move(mode);
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
  std::unordered_map<std::string, std::string> modes;
  {
    std::lock_guard lock(mu_);
    rows = components_;
    bus = bus_;
    modes = modes_;
  }
  for (const auto& row : rows) {
    ComponentStatus c{row.kind, row.name, 0, 0, 0, {}};
    if (auto it = modes.find(row.name); row.kind == "plugin" && it != modes.end())
      c.mode = it->second;
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
  // The marker's kept flows count as active_flows() lists them: those no plugin reported.
  const auto probe = marker();
  const auto kept =
      probe && probe->kept_flow_count() ? probe->kept_flows() : std::vector<ActiveFlow>{};
  std::lock_guard lock(flows_mu_);
  std::size_t n = flows_.size();
  const ReportedCheck reported(flows_, kept);
  for (const auto& f : kept)
    n += flows_.find(Key{f.key, f.origin}) || reported.sourceless(f) ? 0 : 1;
  return n;
}

void StatusBoard::set_restarts(std::span<const FlowID> flows) {
  std::lock_guard lock(mu_);
  restarts_.clear();
  for (const auto& f : flows)
    if (f.plugin) restarts_[f.plugin].push_back(PendingRestart{FlowKey::of(f), f.socket_cookie});
}

std::vector<PendingRestart> StatusBoard::take_restarts(const char* plugin) {
  std::lock_guard lock(mu_);
  auto it = restarts_.find(plugin);
  if (it == restarts_.end()) return {};
  auto out = std::move(it->second);
  restarts_.erase(it);
  return out;
}

void StatusBoard::restarts_started(const char* plugin) {
  std::function<void(std::string_view)> taken;
  {
    std::lock_guard lock(mu_);
    taken = bus_.restarts_taken;
  }
  if (taken) taken(plugin);
}

std::vector<ActiveFlow> StatusBoard::reported_flows(const char* plugin) const {
  std::function<std::vector<FlowID>(std::string_view)> live;
  {
    std::lock_guard lock(mu_);
    live = bus_.live_reports;
  }
  std::vector<ActiveFlow> out;
  if (live)
    for (const auto& f : live(plugin))
      out.push_back(ActiveFlow{FlowKey::of(f),
                               f.origin,
                               f.experiment,
                               f.activity,
                               f.plugin,
                               f.start_time.value_or(started_),
                               {}});
  // What the backends follow, too: a report the arbiter forgot at its capacity is still listed
  // here (a flow found twice is taken once: ConnectionTracker::inherit keeps the first).
  const std::string_view name(plugin);
  std::lock_guard lock(flows_mu_);
  flows_.for_each([&](const Key& k, const Entry& e) {
    if (name == e.plugin)
      out.push_back(ActiveFlow{k.flow, k.origin, e.experiment, e.activity, e.plugin, e.start, {}});
  });
  return out;
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
  const auto probe = marker();
  if (!probe) return out;
  // What a pinned map kept from a flowd no longer running, reported by no plugin yet (a plugin's
  // report of one is listed once, as the plugin's).
  if (out.size() < max)
    if (auto kept = probe->kept_flows(); !kept.empty()) {
      std::lock_guard lock(flows_mu_);
      const ReportedCheck reported(flows_, kept);
      for (auto& f : kept) {
        if (out.size() >= max) break;
        if (!flows_.find(Key{f.key, f.origin}) && !reported.sourceless(f))
          out.push_back(std::move(f));
      }
    }
  // The marker's map is read outside the table's lock: a lookup is a system call per flow.
  for (auto& f : out) f.marked = probe->holds(f.key);
  return out;
}

}  // namespace flowd
