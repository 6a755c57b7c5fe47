// SPDX-License-Identifier: Apache-2.0
#include "plugins/iperf/iperf_config.hpp"

#include <charconv>

#include "plugins/scanner/flow_ids.hpp"
#include "plugins/scanner/scanner_keys.hpp"

namespace flowd::iperf {
namespace {

constexpr auto kOwnerKeys = scanner::owner_keys(
    "iperf3", "report the connections of processes with this name (comm)", "IPERF_FLOW_ID");
constexpr std::array<KeySpec, 1> kPortsKey = {{
    {"ports", KeyType::kString, "",
     "instead of process ownership: connections with a local or remote port in this range (e.g. "
     "5201-5299), "
     "pairs taken round-robin (the original iperf_rr)"},
}};
constexpr std::array<KeySpec, 1> kProcDir = {{
    {"proc_dir", KeyType::kPath, "/proc", "where processes are looked up"},
}};
constexpr auto kKeys = scanner::join(kOwnerKeys, kPortsKey, scanner::scan_keys({}, {}), kProcDir);

bool parse_port(std::string_view s, unsigned& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size() && out >= 1 && out <= 65535;
}

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

IperfConfig IperfConfig::from(const Section& cfg, const ScitagsRegistry& registry) {
  IperfConfig c;
  c.flow_ids = scanner::parse_flow_ids(cfg, registry, "plugin.iperf");
  c.process = cfg.get("process");
  c.proc_dir = cfg.get("proc_dir");
  const std::string ports = cfg.get("ports");
  if (!ports.empty()) {
    auto dash = ports.find('-');
    unsigned lo = 0, hi = 0;
    bool ok = dash == std::string::npos
                  ? parse_port(ports, lo) && parse_port(ports, hi)
                  : parse_port(std::string_view(ports).substr(0, dash), lo) &&
                        parse_port(std::string_view(ports).substr(dash + 1), hi);
    if (!ok || lo > hi)
      throw ConfigError("[plugin.iperf] ports: expected PORT or FIRST-LAST, got '" + ports + "'");
    c.ports = std::pair{lo, hi};
  }
  return c;
}

}  // namespace flowd::iperf
