// SPDX-License-Identifier: Apache-2.0
// What the running daemon tells about itself, read-only, for the api plugin's GET /v1/status and
// GET /v1/flows (and so `flowd status` / `flowd flows`). The core (src/core/status_board.cpp)
// implements DaemonStatus and lends it to components through Context::status; the marker (the
// ebpf backend) lends the core a MarkerProbe. Every call is thread-safe and never blocks on a
// component's work: HTTP threads call them while plugins publish and reloads run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flowd/flow_id.hpp"

namespace flowd {

// One flow the daemon saw start (or go on) and not yet end, from any plugin.
struct ActiveFlow {
  FlowKey key;
  FlowOrigin origin = FlowOrigin::kObserved;
  std::uint16_t experiment = 0;
  std::uint16_t activity = 0;
  const char* plugin = "";     // static name of the plugin that reported it
  TimePoint start;             // the flow's start time, or when flowd first heard of it
  std::optional<bool> marked;  // whether the marker's map holds it; nullopt: no marker runs
};

// A connection a plugin reported that the previous flowd no longer reported at its end, found open
// again at this start (the flow journal, core/flow_journal.hpp): one its clean stop ended, one a
// tool's report hid that ended while no flowd ran, or a new socket on the 4-tuple of a journaled
// one. Its plugin starts it again at its first dump, as a new connection: the filter and tags of
// the configuration of now decide (not the journal's), where the plugin adopts the other
// connections older than it silently.
struct PendingRestart {
  FlowKey key;                      // local address and port first, as the connection plugins say
  std::uint64_t socket_cookie = 0;  // of the socket found open; 0: unknown
};

// The `start` event an active flow began with, as far as the status keeps it (its 5-tuple, tag,
// origin, plugin and start time): for a component that takes over the flows active before it.
inline FlowID start_event(const ActiveFlow& a) {
  FlowID f;
  f.origin = a.origin;
  f.state = FlowState::kStart;
  f.protocol = a.key.protocol;
  f.src = a.key.src;
  f.dst = a.key.dst;
  f.src_port = a.key.src_port;
  f.dst_port = a.key.dst_port;
  f.experiment = a.experiment;
  f.activity = a.activity;
  f.start_time = a.start;
  f.plugin = a.plugin;
  return f;
}

// A running plugin or backend. Backends have a queue: depth now, capacity, events dropped at it
// because it was full (since flowd started).
struct ComponentStatus {
  std::string kind;  // "plugin" or "backend"
  std::string name;
  std::size_t queue_depth = 0;
  std::size_t queue_capacity = 0;
  std::uint64_t dropped = 0;
  // How a plugin that has a choice works now, as it said last (DaemonStatus::set_mode); "" for
  // the others. The kernel plugin: following the kernel's TCP state changes, or polling sock_diag
  // and why (try16b F5: before, only its log and metrics told them apart).
  std::string mode;
};

// One interface the marker was configured for (or chose), and whether its egress filter is
// attached.
struct MarkerInterface {
  std::string name;
  bool attached = false;
};

struct DaemonStatusReport {
  std::string version;  // flowd's version and commit
  TimePoint started;    // when the daemon started
  std::vector<ComponentStatus> components;
  std::uint64_t events_published = 0;  // by every plugin since start
  std::uint64_t events_dropped = 0;    // at full backend queues since start
  std::string registry_source;         // URL, file, "cache ..." or "built-in snapshot ..."
  std::string registry_modified;       // the registry's own "modified" field
  TimePoint registry_loaded;  // when the registry in use was last fetched or confirmed (HTTP 304)
  std::size_t registry_experiments = 0;
  bool marker_running = false;
  std::vector<MarkerInterface> marker_interfaces;
  std::size_t marker_map_entries = 0;
  std::size_t active_flows = 0;  // in the table GET /v1/flows lists
  std::size_t active_flows_capacity = 0;
  std::uint64_t active_flows_overflow = 0;  // the oldest evicted to make room, since start
};

// What the marker lends the daemon's status while it runs. Must stay valid (it owns what it reads,
// e.g. a duplicate of the map's descriptor) after the backend that made it stopped.
class MarkerProbe {
 public:
  virtual ~MarkerProbe() = default;
  virtual std::vector<MarkerInterface> interfaces() const = 0;
  // Whether the marker's map has an entry for this flow (what marks its packets).
  virtual bool holds(const FlowKey& key) const = 0;
  virtual std::size_t entries() const = 0;
  // A descriptor of the marker's flow map (owned by the probe, valid while it lives; -1 when the
  // map is not used: match_all), for a component whose BPF program adds entries itself at a
  // connection's state change (the kernel plugin: marked from the first packet). Key struct
  // flowd_flow_key, value the 20-bit label (bpf/flowd_marker.h, bpf/flowd_label.h).
  virtual int flow_map_fd() const { return -1; }
  // The kernel's id of the map whose flows this marker's map took over at its start: its reload's
  // predecessor's (the same map kept, or its entries copied into one of another size), whose
  // entries followed every start the marker heard. 0 when it started without one (the first
  // marker, one added by a reload, or a pinned map of a flowd no longer running): its map lacks
  // the flows that started before it, which a plugin that follows them may write in.
  virtual std::uint32_t carried_from() const { return 0; }
  // The flows its map held when it took a pinned map over from a flowd no longer running, that no
  // plugin of this one has reported since (listed as the plugin "ebpf"); how many there are.
  virtual std::vector<ActiveFlow> kept_flows() const { return {}; }
  virtual std::size_t kept_flow_count() const { return 0; }
};

class DaemonStatus {
 public:
  virtual ~DaemonStatus() = default;
  virtual DaemonStatusReport report() const = 0;
  // At most `max` flows, oldest first; then the marker's kept flows (MarkerProbe::kept_flows).
  virtual std::vector<ActiveFlow> active_flows(std::size_t max) const = 0;
  // How many there are (cheaper than report(), which asks the marker to count its map).
  virtual std::size_t active_flow_count() const = 0;
  // The flows `plugin` (by name) reported started and has not ended: those the backends follow
  // and those an explicit report (np_api, api) hides from them for now (the bus's arbiter holds
  // them, to hand the flow back at the explicit report's end). What a reload's successor takes
  // over; a flow may be listed twice.
  virtual std::vector<ActiveFlow> reported_flows(const char* plugin) const = 0;
  // The connections the flow journal hands `plugin` (by name) to start again (PendingRestart),
  // once: the first call for `plugin` takes them, later ones get none (a reload's successor
  // inherits what its predecessor started instead).
  virtual std::vector<PendingRestart> take_restarts(const char* plugin) {
    (void)plugin;
    return {};
  }
  // After the first dump of a plugin that took some: its starts of them are published (or its
  // configuration left them out). Until then the flow journal keeps them, so that a flowd that dies
  // first leaves them to the next start.
  virtual void restarts_started(const char* plugin) { (void)plugin; }
  // The marker says it runs (probe) or stopped (nullptr: only clears `probe` if it is the one set,
  // so that a successor that started first is not cleared by its predecessor's stop).
  virtual void set_marker(std::shared_ptr<const MarkerProbe> probe) = 0;
  virtual void clear_marker(const MarkerProbe* probe) = 0;
  // The running marker's probe; nullptr when no marker runs. Backends start before plugins, so a
  // plugin's start() sees the marker of the same configuration.
  virtual std::shared_ptr<const MarkerProbe> marker() const = 0;
  // Whether a configuration is being applied (a reload: components stop and start). A marker
  // missing meanwhile may be one being replaced, not one removed. False outside a reload.
  virtual bool reloading() const { return false; }
  // A plugin says how it works now (ComponentStatus::mode), at its start and when it changes; a
  // reload's successor says it again. One line, for a person.
  virtual void set_mode(const char* plugin, std::string mode) {
    (void)plugin;
    (void)mode;
  }
};

}  // namespace flowd
