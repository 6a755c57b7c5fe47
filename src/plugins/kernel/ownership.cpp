// SPDX-License-Identifier: Apache-2.0
#include "plugins/kernel/ownership.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "plugins/scanner/socket_owners.hpp"

namespace flowd::kernel {

KernelTagger KernelTagger::from(const Section& cfg, const ScitagsRegistry& registry) {
  std::string process = cfg.get("process");
  if (process.size() >= sizeof(scanner::Connection::comm))
    throw ConfigError("[plugin.kernel] process: '" + process +
                      "' is longer than a process name (comm) can be: 15 characters");
  auto rules = scanner::port_rules(cfg, registry, "plugin.kernel", false);
  if (!rules.fallback && rules.by_port.empty() && process.empty())
    throw ConfigError(
        "[plugin.kernel] experiment: required (the tag of every connection), unless rules or "
        "process are given");
  // Checked with ownership off too: a mistake in them shows before process is turned on.
  auto ids = scanner::parse_flow_ids(cfg, registry, "plugin.kernel");
  return KernelTagger(std::move(rules), std::move(process), std::move(ids));
}

KernelTagger::KernelTagger(scanner::PortRules rules, std::string process,
                           std::vector<scanner::Tag> flow_ids)
    : rules_(std::move(rules)), process_(std::move(process)), draw_(std::move(flow_ids)) {}

bool KernelTagger::owned(const scanner::Connection& c) const {
  if (process_.empty()) return false;
  const auto* end = std::find(c.comm.begin(), c.comm.end(), '\0');
  return std::string_view(c.comm.data(), static_cast<std::size_t>(end - c.comm.begin())) ==
         process_;
}

std::optional<scanner::Tag> KernelTagger::operator()(const scanner::Connection& c) {
  if (auto it = rules_.by_port.find(c.local_port); it != rules_.by_port.end()) return it->second;
  if (owned(c)) return draw_.draw();
  return rules_.fallback;
}

ProcessOwners::ProcessOwners(std::string proc_dir, std::string process)
    : proc_dir_(std::move(proc_dir)), process_(std::move(process)) {}

bool ProcessOwners::refresh(netlink::SockDiag& diag, std::string& error) {
  scanner::socket_inodes_of(proc_dir_, process_, inodes_);
  std::map<std::uint16_t, bool> ports;
  netlink::DumpRequest req;
  req.states = 1u << netlink::kTcpListen;
  const bool ok = diag.dump(
      req,
      [&](const netlink::SockEntry& e, const netlink::TcpDetails*) {
        ports[e.local_port] = ports[e.local_port] || inodes_.contains(e.inode);
      },
      error);
  owned_ports_.clear();
  listeners_.clear();
  for (const auto& [port, owned] : ports) {
    listeners_.push_back({port, owned});
    if (owned) owned_ports_.insert(port);
  }
  return ok;
}

bool ProcessOwners::owns(const scanner::Connection& c) const {
  if (c.inode != 0) return inodes_.contains(c.inode);
  return c.state != netlink::kTcpListen && owned_ports_.contains(c.local_port);
}

scanner::Connection ProcessOwners::with_owner(const scanner::Connection& c) const {
  scanner::Connection out = c;
  if (owns(c)) {
    out.comm = {};
    std::memcpy(out.comm.data(), process_.data(), std::min(process_.size(), out.comm.size() - 1));
  }
  return out;
}

}  // namespace flowd::kernel
