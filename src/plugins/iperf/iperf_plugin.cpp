// SPDX-License-Identifier: Apache-2.0
#include "plugins/iperf/iperf_plugin.hpp"

#include <unordered_set>

#include "netlink/sock_diag.hpp"
#include "plugins/iperf/iperf_config.hpp"
#include "plugins/scanner/flow_ids.hpp"
#include "plugins/scanner/scanner_plugin.hpp"
#include "plugins/scanner/socket_owners.hpp"

namespace flowd::iperf {
namespace {

class IperfPlugin final : public scanner::ScannerPlugin {
 public:
  IperfPlugin(const Section& cfg, IperfConfig own, Context& ctx, const char* name)
      : ScannerPlugin(name, ctx, scanner::scanner_options(cfg, "plugin.iperf"),
                      [this](const scanner::Connection& c, bool& retry) { return tag(c, retry); }),
        process_(std::move(own.process)),
        proc_dir_(std::move(own.proc_dir)),
        draw_(std::move(own.flow_ids)),
        port_range_(own.ports) {}

  void start() override { diag_.emplace(); }

 protected:
  bool scan(const scanner::ConnectionVisitor& visit, std::string& error) override {
    if (!port_range_) scanner::socket_inodes_of(proc_dir_, process_, owned_);
    return scanner::scan_sock_diag(*diag_, visit, error);
  }

 private:
  std::optional<scanner::Tag> tag(const scanner::Connection& c, bool& retry) {
    if (port_range_) {
      auto in = [&](unsigned p) { return p >= port_range_->first && p <= port_range_->second; };
      if (!in(c.local_port) && !in(c.remote_port)) return std::nullopt;
      return draw_.ids()[next_++ % draw_.ids().size()];
    }
    if (!owned_.contains(c.inode)) {
      // A connection not yet accept()ed has no inode (no owner) yet: look again next scan.
      retry = c.inode == 0;
      return std::nullopt;
    }
    return draw_.draw();
  }

  std::string process_, proc_dir_;
  scanner::FlowIdDraw draw_;
  std::optional<std::pair<unsigned, unsigned>> port_range_;
  std::size_t next_ = 0;
  std::unordered_set<std::uint32_t> owned_;
  std::optional<netlink::SockDiag> diag_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<IperfPlugin>(cfg, IperfConfig::from(cfg, *ctx.registry.get()), ctx, name);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "iperf", "connections of iperf3 processes (or a port range), tagged from flow_ids",
      config_keys(), create};
  return info;
}

}  // namespace flowd::iperf
