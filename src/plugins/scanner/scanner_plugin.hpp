// SPDX-License-Identifier: Apache-2.0
// What the connection scanners (netlink, netstat, iperf) share: every `interval` one scan of the
// host's TCP connections (timerfd, first scan at start), fed through a ConnectionTracker whose
// events are published. A subclass only says how to list connections and how to tag them.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "flowd/component.hpp"
#include "flowd/reload_shelf.hpp"
#include "netlink/sock_diag.hpp"
#include "plugins/scanner/connection_tracker.hpp"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace flowd::scanner {

using ConnectionVisitor = std::function<void(const scanner::Connection&)>;

struct ScannerOptions {
  std::chrono::milliseconds interval{2000};
  scanner::ConnectionFilter filter;
  bool report_existing = false;
  // A reload's successor asks the tagger again for the connections its predecessor followed
  // (ConnectionTracker::retag): netlink, netstat, the kernel plugin; not iperf, which draws every
  // tag. `retag_with`, when set, is asked instead (the kernel plugin with `process`: an owned
  // connection's drawn pair stays).
  bool retag = false;
  Tagger retag_with;
};
// `o` with retag set: for the plugins whose tags are port rules and the fixed tag.
inline ScannerOptions retagging(ScannerOptions o) {
  o.retag = true;
  return o;
}

// Reads the keys every scanner has (interval, internal_networks, ignore_private, report_existing);
// throws ConfigError naming `section` for a bad prefix.
ScannerOptions scanner_options(const Section& cfg, const std::string& section);

// Parses `experiment`/`activity` (ids or registry names) and `rules` ('PORT EXPERIMENT ACTIVITY',
// a local port's tag); returns the tagger. Throws ConfigError when neither a default tag nor rules
// are configured, or a name is unknown.
// What port_rule_tagger decides by: the fixed tag (experiment, activity; nullopt when not set) and
// the tags by local port (rules). Throws ConfigError as port_rule_tagger does; with `required`
// false, neither is fine (the plugin tags by something else too: the kernel plugin's process).
struct PortRules {
  std::optional<scanner::Tag> fallback;
  std::map<std::uint16_t, scanner::Tag> by_port;
};
PortRules port_rules(const Section& cfg, const ScitagsRegistry& reg, const std::string& section,
                     bool required = true);

scanner::Tagger port_rule_tagger(const Section& cfg, const ScitagsRegistry& reg,
                                 const std::string& section);

// Lists the non-listening TCP sockets of the namespace with one sock_diag dump.
bool scan_sock_diag(netlink::SockDiag& diag, const ConnectionVisitor& visit, std::string& error);

// Gives `tracker`, before its first scan, the flows `plugin`'s predecessor started and did not end
// (the daemon's status lists them, those an explicit report hides from the backends too): see
// ConnectionTracker::inherit. Returns how many.
std::size_t inherit_flows(ConnectionTracker& tracker, DaemonStatus* status, const char* plugin);

// Gives `tracker`, before its first scan, the connections the flow journal hands `plugin` to start
// again (DaemonStatus::take_restarts; see ConnectionTracker::expect_restarts). Returns their keys,
// all of them, for restarts_said().
std::vector<FlowKey> expect_restarts(ConnectionTracker& tracker, DaemonStatus* status,
                                     const char* plugin);
// The log line's words for the first scan, whose events are `events`, of a plugin that was handed
// `keys` to start again: how many it started and how many its configuration no longer reports
// (empty without keys).
std::string restarts_said(std::span<const FlowKey> keys, std::span<const FlowID> events);
// What a reload's successor changed of the connections it followed on, for its start line:
// "; 2 excluded now ended; 3 tagged otherwise now: ended and started again with their new tag;
// 1 no longer tagged: ended" (each part only when not 0).
std::string reload_changes_said(std::size_t excluded, const ConnectionTracker::Retagged& r);

// At a plugin's stop: unless a successor takes them over (Plugin::before_stop), every flow
// `tracker` started gets its end now.
void end_unless_succeeded(ConnectionTracker& tracker, const std::atomic<bool>& successor,
                          Publisher& out);

// What a scanner stopped by a reload leaves its successor (flowd/reload_shelf.hpp): what it
// followed, every connection it started, adopted at its own start or ignored, so that the
// successor's first scan is an ordinary one: it starts only what neither knew (opened since the
// predecessor's last scan), keeps the adopted and ignored ones quiet, and starts nothing twice.
struct ShelvedTracker final : ShelfItem {
  std::optional<ConnectionTracker> tracker;
};

class ScannerPlugin : public Plugin {
 public:
  ScannerPlugin(const char* name, Context& ctx, ScannerOptions options, scanner::Tagger tagger);
  void run(std::stop_token stop, Publisher& out) override;
  void before_stop(bool successor) override { successor_ = successor; }

 protected:
  // Visits every TCP connection of the host once. False (and `error`) when the scan failed.
  virtual bool scan(const ConnectionVisitor& visit, std::string& error) = 0;
  std::shared_ptr<spdlog::logger> log_;

 private:
  void scan_once(Publisher& out);
  // Where a reload's stopped instance leaves its tracker to its successor (ShelvedTracker).
  std::string reload_key() const { return std::string("plugin.") + name_ + ".reloaded"; }
  const char* name_;
  DaemonStatus* status_;  // the flows a predecessor started (a reload); null in unit tests
  ReloadShelf* shelf_;    // null in unit tests
  ScannerOptions options_;
  scanner::ConnectionTracker tracker_;
  bool followed_on_ = false;  // tracker_ took over a reload's predecessor's (ShelvedTracker)
  std::vector<FlowID> events_;
  // Whether a reload's successor takes the flows over (before_stop): without one, run() ends them.
  std::atomic<bool> successor_{false};
  prometheus::Counter *scans_, *errors_;
  prometheus::Gauge *connections_, *duration_, *tracked_;
};

}  // namespace flowd::scanner
