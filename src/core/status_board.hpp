// SPDX-License-Identifier: Apache-2.0
// The core's side of flowd/daemon_status.hpp: the table of active flows the bus fills, the
// components the runtime runs, the registry in use, the marker's probe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/flow_table.hpp"
#include "flowd/daemon_status.hpp"
#include "flowd/event_queue.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd {

class StatusBoard final : public DaemonStatus {
 public:
  // At most this many active flows are remembered; a new one then evicts the oldest (counted).
  static constexpr std::size_t kActiveFlowCapacity = 65536;

  struct ComponentRow {
    std::string kind;
    std::string name;
    std::shared_ptr<const EventQueue> queue;  // backends
  };
  // The bus's totals, read at report time: published, dropped, dropped for one backend; and the
  // live local reports of one plugin (Bus::live_reports).
  struct BusCounts {
    std::function<std::uint64_t()> published;
    std::function<std::uint64_t()> dropped;
    std::function<std::uint64_t(const std::string&)> dropped_for;
    std::function<std::vector<FlowID>(std::string_view)> live_reports;
    // A plugin's first dump started its connections to start again (restarts_started): the flow
    // journal lets go of them (Bus::restarts_taken).
    std::function<void(std::string_view)> restarts_taken;
  };

  explicit StatusBoard(RegistryHandle& registry);

  // The bus, for every batch a plugin publishes (any thread): a start or ongoing event enters the
  // flow (its first start time kept), an end removes it. `plugin` null: each event's
  // FlowID::plugin.
  void record(std::span<const FlowID> flows, const char* plugin);
  // The runtime, after each change of what runs (main or reload thread).
  void set_components(std::vector<ComponentRow> rows);
  void set_bus_counts(BusCounts counts);

  DaemonStatusReport report() const override;
  std::vector<ActiveFlow> active_flows(std::size_t max) const override;
  std::size_t active_flow_count() const override;
  std::vector<ActiveFlow> reported_flows(const char* plugin) const override;
  std::vector<PendingRestart> take_restarts(const char* plugin) override;
  void restarts_started(const char* plugin) override;
  // The runtime, at the daemon's start before any plugin runs: the flow journal's connections to
  // start again (FlowID::plugin names whose).
  void set_restarts(std::span<const FlowID> flows);
  void set_marker(std::shared_ptr<const MarkerProbe> probe) override;
  void clear_marker(const MarkerProbe* probe) override;
  std::shared_ptr<const MarkerProbe> marker() const override;
  bool reloading() const override { return reloading_.load(std::memory_order_acquire); }
  void set_mode(const char* plugin, std::string mode) override;
  // The runtime, around each application of a configuration (Runtime::apply).
  void set_reloading(bool on) { reloading_.store(on, std::memory_order_release); }

 private:
  struct Key {
    FlowKey flow;
    FlowOrigin origin = FlowOrigin::kObserved;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept {
      return FlowKeyHash{}(k.flow) * 3 + static_cast<std::size_t>(k.origin);
    }
  };
  struct Entry {
    std::uint16_t experiment = 0;
    std::uint16_t activity = 0;
    const char* plugin = "";
    TimePoint start;
  };

  // Whether a flow the marker kept (no plugin reported it) is one a plugin reports after all,
  // though the marker gave it no source. Made under flows_mu_.
  class ReportedCheck {
   public:
    template <typename Table>
    ReportedCheck(const Table& flows, const std::vector<ActiveFlow>& kept);
    bool sourceless(const ActiveFlow& kept) const;

   private:
    std::unordered_set<FlowKey, FlowKeyHash> sourceless_;
  };

  RegistryHandle& registry_;
  const TimePoint started_;
  mutable std::mutex flows_mu_;
  FlowTable<Key, Entry, KeyHash> flows_{kActiveFlowCapacity};
  mutable std::mutex mu_;  // components_, bus_, marker_, restarts_
  std::vector<ComponentRow> components_;
  // By plugin name; bounded by the journal's live set, emptied as the plugins take them.
  std::unordered_map<std::string, std::vector<PendingRestart>> restarts_;
  BusCounts bus_;
  std::shared_ptr<const MarkerProbe> marker_;
  std::unordered_map<std::string, std::string> modes_;  // by plugin name (set_mode)
  std::atomic<bool> reloading_{false};
};

}  // namespace flowd
