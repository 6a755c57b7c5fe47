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

class EventQueue;
class MetricsHub;

// Where plugins put events. Thread-safe; never blocks (a full backend queue drops and counts).
class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void publish(const FlowID& flow) = 0;
};

// What the core lends to every component. Outlives all components.
struct Context {
  RegistryHandle& registry;
  prometheus::Registry& metrics;
  MetricsHub& hub;  // for collectors that read their values at scrape time
  std::string hostname;
  std::string work_dir;
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual void start() {}
  // Blocks until `stop` is requested (wake-ups through a file descriptor, never by sleeping).
  // Throwing ends the daemon with exit code 1.
  virtual void run(std::stop_token stop, Publisher& out) = 0;
  virtual void stop() {}
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void start() {}
  virtual void handle(const FlowID& flow) = 0;
  // Default: handle events until the queue is closed and drained.
  virtual void run(std::stop_token stop, EventQueue& in);
  virtual void stop() {}
  // On reload, for a backend kept because its configuration did not change (main thread, while
  // run() goes on): a chance to refresh what it learnt from the environment at start().
  virtual void reloaded() {}
};

struct PluginInfo {
  std::string_view name;
  std::string_view description;
  std::span<const KeySpec> keys;
  std::unique_ptr<Plugin> (*create)(const Section& config, Context& ctx, const char* name);
};

struct BackendInfo {
  std::string_view name;
  std::string_view description;
  std::span<const KeySpec> keys;
  std::unique_ptr<Backend> (*create)(const Section& config, Context& ctx);
};

}  // namespace flowd
