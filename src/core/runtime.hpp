// SPDX-License-Identifier: Apache-2.0
// The running set of plugins and backends, and how a new configuration replaces it.
#pragma once

#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/bus.hpp"
#include "core/config_loader.hpp"
#include "core/status_board.hpp"
#include "flowd/component.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/record_sink.hpp"
#include "flowd/reload_shelf.hpp"
#include "flowd/thread_name.hpp"

namespace flowd {

class Runtime {
 public:
  Runtime(prometheus::Registry& metrics, MetricsHub& hub, RegistryHandle& registry);
  ~Runtime();

  // Brings the running components in line with `c`: unchanged ones keep running, changed ones are
  // restarted, others stopped or started. Throws if a component fails to start. May take as long as
  // the components' start()/reloaded() network work (STUN): the daemon calls it off its signal loop
  // on reload. Not to be called concurrently with itself, stop_all() or summary().
  void apply(const Config& c);
  // Stops plugins, then drains and stops backends.
  void stop_all();

  // Readable when a worker thread died; failure() says which and why.
  int failure_fd() const { return failure_fd_; }
  std::string failure() const;
  std::string summary() const;
  // "events=N dropped=M": published by plugins and dropped at full queues since start.
  std::string event_totals() const;

  // Worker threads (component threads and the threads they start) busy outside their wait for work
  // for longer than `limit`, as "who (N s)"; empty when all make progress. Thread-safe.
  std::vector<std::string> stalled(std::chrono::steady_clock::duration limit) const {
    return heartbeats_.stalled(limit);
  }
  // The daemon is stopping: components' network work in start()/reloaded() gives up
  // (Context::stopping). Thread-safe; cannot be undone.
  void request_stop() { stopping_.request_stop(); }
  // Bus::retry_journal: true while the flow journal's file stays behind (the main loop's poll then
  // wakes a second later to try again).
  bool retry_journal() { return bus_.retry_journal(); }
  int journal_stale_fd() { return bus_.journal_stale_fd(); }
  std::stop_token stopping() const { return stopping_.get_token(); }

 private:
  struct RunningPlugin {
    const PluginInfo* info;
    Section section;
    std::unique_ptr<Plugin> impl;
    std::unique_ptr<Publisher> out;  // declared before the thread, which uses it until joined
    std::shared_ptr<Heartbeat> heartbeat;
    std::jthread thread;
  };
  struct RunningBackend {
    const BackendInfo* info;
    Section section;
    std::size_t queue_size;
    std::unique_ptr<Backend> impl;
    std::shared_ptr<EventQueue> queue;
    std::shared_ptr<Heartbeat> heartbeat;
    std::jthread thread;
  };

  void report_failure(const std::string& who, const std::string& why);
  // A component's thread: runs `body(stop)` with `hb` bound to it and reports to the supervisor an
  // exception, or a return that was neither asked for (stop) nor normal (body returned true).
  template <typename Body>
  std::jthread supervised(std::string who, std::shared_ptr<Heartbeat> hb, Body body) {
    const std::string name = thread_name_for(who);
    std::jthread t([this, who = std::move(who), hb = std::move(hb),
                    body = std::move(body)](std::stop_token st) {
      bind_thread_heartbeat(hb.get());
      // A thread that ended is not stuck: its end, if unexpected, is reported below.
      struct Ended {
        Heartbeat& hb;
        ~Ended() { hb.enter_wait(); }
      } ended{*hb};
      bool normal_end = false;
      try {
        normal_end = body(st);
      } catch (const std::exception& e) {
        report_failure(who, e.what());
        return;
      }
      if (!normal_end && !st.stop_requested()) report_failure(who, "worker returned unexpectedly");
    });
    // Named from here, before start-up goes on to READY=1, not from inside the thread.
    ::pthread_setname_np(t.native_handle(), name.c_str());
    return t;
  }
  // `successor`: the configuration being applied starts the same plugin again
  // (Plugin::before_stop).
  void stop_plugin(RunningPlugin& p, bool successor);
  void stop_backend(RunningBackend& b);
  void publish_subscribers();
  // At the first apply, before any component starts: reads the flow journal the previous flowd
  // left (flow_journal.hpp), restores the reports `c`'s plugins follow on and returns the ends of
  // the others, and the starts of the connections its stop ended that are open again (and of the
  // new connections found on a journaled report's 4-tuple), for the backends once they run.
  struct Recovered {
    std::vector<FlowID> ends, restarts;
    std::vector<std::uint8_t> ends_explicit;  // each end's report's rank (1: explicit)
  };
  Recovered recover_flows(const Config& c);

  HeartbeatBoard heartbeats_;
  StatusBoard status_;  // before ctx_ and bus_, which point to it
  std::stop_source stopping_;
  ReloadShelf shelf_;
  RecordTap records_;  // before ctx_, which points to it
  Context ctx_;
  FlowJournal journal_;  // before bus_, which writes to it
  Bus bus_;
  // The recovered ends given to the backends at the start, and how many of them (a prefix) the
  // flow journal has ended: the bus says more as the backends process them, until the stop.
  std::vector<FlowID> recovered_ends_;
  std::vector<std::uint8_t> recovered_explicit_;
  std::size_t recovered_journaled_ = 0;
  void release_recovered_ends();  // all journaled, or the stop settled them
  bool started_ = false;          // the first apply (the daemon's start) is done
  std::vector<RunningPlugin> plugins_;
  std::vector<RunningBackend> backends_;
  // Queues of backends being replaced by a reload, made before the old instance stops and
  // subscribed at once, so that what plugins publish meanwhile waits for the successor (bounded; a
  // full queue drops and counts) instead of reaching no queue at all. Empty outside apply() unless
  // it failed.
  std::map<std::string, std::shared_ptr<EventQueue>> successor_queues_;
  int failure_fd_;
  mutable std::mutex failure_mu_;
  std::string failure_;
  std::string core_fingerprint_;
};

}  // namespace flowd
