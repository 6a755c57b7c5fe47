// SPDX-License-Identifier: Apache-2.0
// Process ownership in the kernel plugin (issue 15): `[plugin.kernel] process` and `flow_ids`, as
// `[plugin.iperf]` has them. How a connection is tagged (KernelTagger), and who owns what a
// sock_diag dump lists (ProcessOwners: /proc and the listening sockets), for the connections the
// kernel did not see open (adopted at start, found by a resync, or every one while polling).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "flowd/config.hpp"
#include "flowd/scitags_registry.hpp"
#include "netlink/sock_diag.hpp"
#include "plugins/scanner/connection_tracker.hpp"
#include "plugins/scanner/flow_ids.hpp"
#include "plugins/scanner/scanner_plugin.hpp"

namespace flowd::kernel {

// The kernel plugin's tags: a port rule wins, then process ownership (a pair drawn from
// `flow_ids`), then the fixed tag (experiment/activity); nothing of these: not reported.
class KernelTagger {
 public:
  // Reads experiment, activity, rules, process and flow_ids. Throws ConfigError("[plugin.kernel]
  // <key>: ...") for what port_rules and parse_flow_ids refuse, and when none of a fixed tag,
  // rules or a process is given.
  static KernelTagger from(const Section& cfg, const ScitagsRegistry& registry);
  KernelTagger(scanner::PortRules rules, std::string process, std::vector<scanner::Tag> flow_ids);

  // The tag of a starting connection; owned when its comm (scanner::Connection::comm) is the
  // process's.
  std::optional<scanner::Tag> operator()(const scanner::Connection& c);
  bool owned(const scanner::Connection& c) const;

  const scanner::PortRules& rules() const { return rules_; }
  // The comm matched; empty: ownership off.
  const std::string& process() const { return process_; }
  // Whether the fixed tag is every non-rule connection's, so that the kernel can mark by it
  // alone: not with ownership on, where an owned connection gets a pair instead.
  bool fixed_tag_decides() const { return rules_.fallback && process_.empty(); }

 private:
  scanner::PortRules rules_;
  std::string process_;
  scanner::FlowIdDraw draw_;
};

// Who owns the connections of a sock_diag dump, for a process name: the socket inodes of its
// processes (/proc/PID/fd, as the iperf plugin), and the local ports it listens on (a connection
// not yet accept()ed has no inode: it is its listener's).
class ProcessOwners {
 public:
  ProcessOwners(std::string proc_dir, std::string process);

  struct Listener {
    std::uint16_t port;
    bool owned;  // a listener on the port is one of the process's sockets
  };
  // Reads /proc again and dumps the listening sockets. False and `error` when the dump failed
  // (the inodes are read all the same).
  bool refresh(netlink::SockDiag& diag, std::string& error);
  // Whether `c`, listed by a dump, is the process's.
  bool owns(const scanner::Connection& c) const;
  // `c` with comm set to the process's name when owns(c).
  scanner::Connection with_owner(const scanner::Connection& c) const;
  // The listening ports the last refresh found, each once.
  const std::vector<Listener>& listeners() const { return listeners_; }
  const std::string& process() const { return process_; }

 private:
  std::string proc_dir_, process_;
  std::unordered_set<std::uint32_t> inodes_;
  std::set<std::uint16_t> owned_ports_;
  std::vector<Listener> listeners_;
};

}  // namespace flowd::kernel
