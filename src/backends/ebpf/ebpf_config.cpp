// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/ebpf_config.hpp"

#include <net/if.h>

#include <algorithm>
#include <optional>

#include "flowd/scitags_label.hpp"

namespace flowd::ebpf {
namespace {

constexpr KeySpec kKeys[] = {
    {"interfaces", KeyType::kList, "",
     "interfaces whose egress is marked, names or shell patterns (veth*), followed as they come "
     "and go; empty: every interface with a global IPv6 address",
     "NETWORK_INTERFACE"},
    {"max_flows",
     KeyType::kInt,
     "100000",
     "size of the flow map (LRU: the least recently used flow goes first)",
     {},
     1,
     10000000},
    {"match_all", KeyType::kBool, "no",
     "tag every outgoing IPv6 TCP/UDP packet with experiment/activity (perfSONAR hosts)"},
    {"experiment", KeyType::kString, "", "match_all: experiment, 0..511 or a registry name"},
    {"activity", KeyType::kString, "", "match_all: activity, 0..63 or a registry name"},
    {.name = "pin_path",
     .type = KeyType::kPath,
     .default_value = "/sys/fs/bpf/flowd/flow_labels",
     .help = "where the flow map is pinned (a BPF file system), so that a restarted flowd keeps "
             "marking the flows it marked; empty: not pinned (flows are still kept across reloads)",
     .empty_allowed = true},
};

// What the kernel accepts as a name (dev_valid_name): 1..IFNAMSIZ-1 bytes, no '/', ':' is allowed
// (aliases), no white space.
bool valid_interface_name(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  for (unsigned char ch : name)
    if (ch == '/' || ch <= ' ' || ch == 0x7f) return false;
  return true;
}

// Where a pattern has a '[' that opens no bracket expression, if it has one. fnmatch takes such a
// '[' as itself, which no interface the pattern was meant for has in its name: `ve[` would match
// nothing, silently. A ']' first in the brackets (after '!' or '^') is a member, and [:class:],
// [=c=] and [.c.] inside them close with their own ":]", "=]" or ".]" (POSIX.1 2.13.1).
std::optional<std::size_t> unclosed_bracket(const std::string& p) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      ++i;  // an escaped character is itself
      continue;
    }
    if (p[i] != '[') continue;
    std::size_t j = i + 1;
    if (j < p.size() && (p[j] == '!' || p[j] == '^')) ++j;
    if (j < p.size() && p[j] == ']') ++j;
    while (j < p.size() && p[j] != ']') {
      if (p[j] == '[' && j + 1 < p.size() &&
          (p[j + 1] == ':' || p[j + 1] == '=' || p[j + 1] == '.')) {
        const std::size_t end = p.find(std::string{p[j + 1], ']'}, j + 2);
        if (end == std::string::npos) return i;
        j = end + 2;
      } else {
        ++j;
      }
    }
    if (j >= p.size()) return i;
    i = j;
  }
  return std::nullopt;
}

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

EbpfConfig EbpfConfig::from(const Section& cfg, const ScitagsRegistry& registry) {
  EbpfConfig c;
  c.interfaces = cfg.get_list("interfaces");
  for (auto it = c.interfaces.begin(); it != c.interfaces.end(); ++it) {
    const std::string& name = *it;
    if (!valid_interface_name(name))
      throw ConfigError("[backend.ebpf] interfaces: '" + name +
                        "' cannot be an interface name (1 to 15 bytes, no '/' or white space)");
    // Named twice, the second entry would ask for the marker lock the first just took, and flowd
    // would blame "another flowd" with its own pid.
    if (std::find(c.interfaces.begin(), it, name) != it)
      throw ConfigError("[backend.ebpf] interfaces: '" + name +
                        "' is listed twice (name each interface or pattern once)");
    if (auto at = unclosed_bracket(name))
      throw ConfigError("[backend.ebpf] interfaces: '" + name + "': the '[' at position " +
                        std::to_string(*at + 1) +
                        " opens no bracket expression (a pattern's [...] must close with ']')");
  }
  c.max_flows = static_cast<std::uint32_t>(cfg.get_int("max_flows"));
  c.match_all = cfg.get_bool("match_all");
  c.pin_path = cfg.get("pin_path");
  if (c.match_all) {
    auto exp = registry.experiment_id(cfg.get("experiment"));
    auto act = exp ? registry.activity_id(*exp, cfg.get("activity")) : std::nullopt;
    if (!exp || !act)
      throw ConfigError(
          "[backend.ebpf] match_all = yes needs experiment (0..511 or a name) and activity "
          "(0..63 or a name of that experiment); got '" +
          cfg.get("experiment") + "' / '" + cfg.get("activity") + "'");
    c.match_all_label = make_label(*exp, *act, 0);
  } else if (!cfg.get("experiment").empty() || !cfg.get("activity").empty()) {
    // Without match_all each flow brings its own tag: a fixed one set here would be taken for
    // the tag of every packet while nothing uses it (as a scanner's activity without experiment).
    throw ConfigError(
        "[backend.ebpf] experiment/activity: used only with match_all = yes (the tag of every "
        "packet); without it each flow is marked with its own tag: set match_all = yes, or remove "
        "them");
  }
  return c;
}

}  // namespace flowd::ebpf
