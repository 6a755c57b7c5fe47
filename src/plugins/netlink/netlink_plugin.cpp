// SPDX-License-Identifier: Apache-2.0
#include "plugins/netlink/netlink_plugin.hpp"

#include "netlink/sock_diag.hpp"
#include "plugins/scanner/scanner_keys.hpp"
#include "plugins/scanner/scanner_plugin.hpp"

namespace flowd::netlink_plugin {
namespace {

constexpr auto kKeys =
    scanner::join(scanner::tag_keys("NETLINK_EXPERIMENT", "NETLINK_ACTIVITY"),
                  scanner::scan_keys("NETLINK_INTERNAL_NETWORKS", "NETLINK_TIMEOUT"));

class NetlinkPlugin final : public scanner::ScannerPlugin {
 public:
  NetlinkPlugin(const Section& cfg, Context& ctx, const char* name)
      : ScannerPlugin(name, ctx,
                      scanner::retagging(scanner::scanner_options(cfg, "plugin.netlink")),
                      scanner::port_rule_tagger(cfg, *ctx.registry.get(), "plugin.netlink")) {}

  // The netlink socket is opened here so that a failure is reported before READY=1.
  void start() override { diag_.emplace(); }

 protected:
  bool scan(const scanner::ConnectionVisitor& visit, std::string& error) override {
    return scanner::scan_sock_diag(*diag_, visit, error);
  }

 private:
  std::optional<netlink::SockDiag> diag_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<NetlinkPlugin>(cfg, ctx, name);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "netlink", "TCP connections from sock_diag (netlink) dumps: start and end events", kKeys,
      create};
  return info;
}

}  // namespace flowd::netlink_plugin
