// SPDX-License-Identifier: Apache-2.0
#include "plugins/iperf/iperf_plugin.hpp"

#include <charconv>
#include <random>
#include <unordered_set>

#include "netlink/sock_diag.hpp"
#include "plugins/iperf/socket_owners.hpp"
#include "plugins/scanner/scanner_keys.hpp"
#include "plugins/scanner/scanner_plugin.hpp"

namespace flowd::iperf {
namespace {

constexpr std::array<KeySpec, 3> kOwnKeys = {{
    {"flow_ids", KeyType::kList, "2:9, 2:19, 3:3, 3:4, 4:3, 4:4, 5:10, 5:14",
     "EXPERIMENT:ACTIVITY pairs (ids or names); each connection gets one, kept for its end",
     "IPERF_FLOW_ID"},
    {"process", KeyType::kString, "iperf3",
     "report the connections of processes with this name (comm)"},
    {"ports", KeyType::kString, "",
     "instead of process ownership: connections with a local or remote port in this range (e.g. "
     "5201-5299), "
     "pairs taken round-robin (the original iperf_rr)"},
}};
constexpr std::array<KeySpec, 1> kProcDir = {{
    {"proc_dir", KeyType::kPath, "/proc", "where processes are looked up"},
}};
constexpr auto kKeys = scanner::join(kOwnKeys, scanner::scan_keys({}, {}), kProcDir);

bool parse_port(std::string_view s, unsigned& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size() && out >= 1 && out <= 65535;
}

class IperfPlugin final : public scanner::ScannerPlugin {
 public:
  IperfPlugin(const Section& cfg, Context& ctx, const char* name)
      : ScannerPlugin(name, ctx, scanner::scanner_options(cfg, "plugin.iperf"),
                      [this](const scanner::Connection& c, bool& retry) { return tag(c, retry); }),
        process_(cfg.get("process")),
        proc_dir_(cfg.get("proc_dir")),
        rng_(std::random_device{}()) {
    auto reg = ctx.registry.get();
    for (const auto& text : cfg.get_list("flow_ids")) {
      auto colon = text.find(':');
      auto e =
          colon == std::string::npos ? std::nullopt : reg->experiment_id(text.substr(0, colon));
      auto a = e ? reg->activity_id(*e, text.substr(colon + 1)) : std::nullopt;
      if (!a)
        throw ConfigError("[plugin.iperf] flow_ids: '" + text +
                          "': expected EXPERIMENT:ACTIVITY (ids or names)");
      ids_.push_back({static_cast<std::uint16_t>(*e), static_cast<std::uint16_t>(*a)});
    }
    if (ids_.empty())
      throw ConfigError("[plugin.iperf] flow_ids: at least one EXPERIMENT:ACTIVITY pair is needed");
    std::string ports = cfg.get("ports");
    if (!ports.empty()) {
      auto dash = ports.find('-');
      unsigned lo = 0, hi = 0;
      bool ok = dash == std::string::npos
                    ? parse_port(ports, lo) && parse_port(ports, hi)
                    : parse_port(std::string_view(ports).substr(0, dash), lo) &&
                          parse_port(std::string_view(ports).substr(dash + 1), hi);
      if (!ok || lo > hi)
        throw ConfigError("[plugin.iperf] ports: expected PORT or FIRST-LAST, got '" + ports + "'");
      port_range_ = {lo, hi};
    }
  }

  void start() override { diag_.emplace(); }

 protected:
  bool scan(const scanner::ConnectionVisitor& visit, std::string& error) override {
    if (!port_range_) socket_inodes_of(proc_dir_, process_, owned_);
    return scanner::scan_sock_diag(*diag_, visit, error);
  }

 private:
  std::optional<scanner::Tag> tag(const scanner::Connection& c, bool& retry) {
    if (port_range_) {
      auto in = [&](unsigned p) { return p >= port_range_->first && p <= port_range_->second; };
      if (!in(c.local_port) && !in(c.remote_port)) return std::nullopt;
      return ids_[next_++ % ids_.size()];
    }
    if (!owned_.contains(c.inode)) {
      // A connection not yet accept()ed has no inode (no owner) yet: look again next scan.
      retry = c.inode == 0;
      return std::nullopt;
    }
    return ids_[std::uniform_int_distribution<std::size_t>(0, ids_.size() - 1)(rng_)];
  }

  std::string process_, proc_dir_;
  std::vector<scanner::Tag> ids_;
  std::optional<std::pair<unsigned, unsigned>> port_range_;
  std::size_t next_ = 0;
  std::unordered_set<std::uint32_t> owned_;
  std::mt19937 rng_;
  std::optional<netlink::SockDiag> diag_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<IperfPlugin>(cfg, ctx, name);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "iperf", "connections of iperf3 processes (or a port range), tagged from flow_ids", kKeys,
      create};
  return info;
}

}  // namespace flowd::iperf
