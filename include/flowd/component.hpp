// SPDX-License-Identifier: Apache-2.0
// Plugins produce FlowIDs, backends consume them. Each runs on its own std::jthread; the core
// calls start() on the main thread first (bind sockets, create the pipe: failures are reported
// before READY=1), then run() on the worker thread, then stop() on the main thread after join.
#pragma once

#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>

#include "flowd/config.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

namespace prometheus {
class Registry;
}
namespace spdlog {
class logger;
}

namespace flowd {

class DaemonStatus;
class EventQueue;
class HeartbeatBoard;
class MetricsHub;
class RecordTap;
class ReloadShelf;

// Where plugins put events: one handle per plugin, made by the core, which names the events after
// the plugin (FlowID::plugin) and counts them. Thread-safe; never blocks (a full backend queue
// drops and counts).
class Publisher {
 public:
  virtual ~Publisher() = default;
  // Hand over what one read produced in one call: each backend queue is then locked and its
  // backend woken once per batch instead of once per event.
  virtual void publish(std::span<const FlowID> flows) = 0;
  void publish(const FlowID& flow) { publish(std::span<const FlowID>(&flow, 1)); }
};

// What the core lends to every component. Outlives all components.
struct Context {
  RegistryHandle& registry;
  prometheus::Registry& metrics;
  MetricsHub& hub;  // for collectors that read their values at scrape time
  std::string hostname;
  std::string work_dir;
  // Where a component registers the threads it starts itself (beside the one the core gives it), so
  // the watchdog sees them; null in unit tests.
  HeartbeatBoard* heartbeats = nullptr;
  // Requested when the daemon stops: network work done during start() or reloaded() (STUN, lookups)
  // gives up early instead of delaying the stop.
  std::stop_token stopping{};
  // Resources handed from a component stopped by a reload to its successor
  // (flowd/reload_shelf.hpp); null in unit tests, where a component cleans up at stop() as if the
  // daemon were stopping.
  ReloadShelf* shelf = nullptr;
  // The daemon's read-only view of itself (flowd/daemon_status.hpp), for the api plugin; the marker
  // reports to it. Null in unit tests.
  DaemonStatus* status = nullptr;
  // Where collector plugins hand decoded records to a backend that publishes them (the kafka
  // backend's `records = yes`; flowd/record_sink.hpp). Null in unit tests and --check-config.
  RecordTap* records = nullptr;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual void start() {}
  // Blocks until `stop` is requested (wake-ups through a file descriptor, never by sleeping); each
  // blocking wait for work sits in a WaitingScope (flowd/heartbeat.hpp), so that the watchdog can
  // tell waiting from stuck. Throwing ends the daemon with exit code 1; so must the failure of any
  // thread the plugin starts itself.
  virtual void run(std::stop_token stop, Publisher& out) = 0;
  virtual void stop() {}
  // Called on the main thread just before the core asks run() to return: whether an instance of
  // the same plugin starts right after this one stops (a reload that changed its section) and may
  // take over the flows it reported. Without one (a reload removed the plugin, or the daemon
  // stops), a plugin that follows flows itself ends them before run() returns, so that no start
  // is left without its end. Default: ignored.
  virtual void before_stop(bool successor) { static_cast<void>(successor); }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void start() {}
  virtual void handle(const FlowID& flow) = 0;
  // Default: handle events until the queue is closed and drained.
  virtual void run(std::stop_token stop, EventQueue& in);
  virtual void stop() {}
  // On reload, for a backend kept because its configuration did not change (on the core's reload
  // thread, while run() goes on): a chance to refresh what it learnt from the environment at
  // start(). Network work here must be bounded in time and give up when Context::stopping is
  // requested.
  virtual void reloaded() {}
};

struct PluginInfo {
  std::string_view name;
  std::string_view description;
  std::span<const KeySpec> keys;
  std::unique_ptr<Plugin> (*create)(const Section& config, Context& ctx, const char* name);
  // A collector that hands its decoded records to Context::records (netflow, sflow).
  bool offers_records = false;
  // Its local flows are reported by the transfer tool itself (np_api, api), not inferred from a
  // socket and a rule (kernel, netlink, netstat, iperf): where both report one 5-tuple, the bus
  // lets the explicit report take precedence (core/local_flow_arbiter.hpp).
  bool explicit_reports = false;
};

struct BackendInfo {
  std::string_view name;
  std::string_view description;
  std::span<const KeySpec> keys;
  std::unique_ptr<Backend> (*create)(const Section& config, Context& ctx);
  // Whether this configuration of the backend takes decoded records from Context::records (the
  // kafka backend's `records = yes`); null: never. The configuration check warns when one does
  // and no plugin offers_records.
  bool (*takes_records)(const Section& config) = nullptr;
  // At a start whose configuration does not list this backend: removes what a flowd of it killed
  // with -9 left behind (the ebpf marker's filters, by its record in `work_dir`); null: nothing.
  void (*clean_up_unlisted)(const std::string& work_dir) = nullptr;
};

}  // namespace flowd
