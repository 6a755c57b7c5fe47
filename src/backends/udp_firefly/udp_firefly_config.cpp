// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/udp_firefly_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/net/socket_address.hpp"

namespace flowd::udp_firefly {
namespace {

// A table, one key per entry: kept as written.
// clang-format off
constexpr KeySpec kKeys[] = {
    {"port", KeyType::kInt, "10514", "destination UDP port of fireflies", "UDP_FIREFLY_PORT", 1, 65535},
    {"collector", KeyType::kEndpointList, "",
     "a copy of every firefly also goes to each of these (at most 8); a port defaults to `port`",
     "UDP_FIREFLY_DST"},
    {.name = "collector_resolve_interval", .type = KeyType::kDuration, .default_value = "5m",
     .help = "look the collectors' names up again this often (and soon after a send error), so that a DNS "
             "change reaches flowd without a restart",
     .min = 1000, .max = 86400 * 1000},
    {"ip4_src", KeyType::kIPv4, "", "written as src-ip of IPv4 fireflies (e.g. the public address behind NAT)",
     "UDP_FIREFLY_IP4_SRC"},
    {"ip6_src", KeyType::kIPv6, "", "written as src-ip of IPv6 fireflies", "UDP_FIREFLY_IP6_SRC"},
    {"syslog_header", KeyType::kBool, "yes", "prefix the RFC 5424 syslog header (PRI 134, UTC time, host name, flowd, firefly-json)"},
    {"max_tracked_flows", KeyType::kInt, "100000",
     "start times (and, with netlink, sockets) remembered per origin for end fireflies; beyond this the oldest "
     "are forgotten, counted in flowd_firefly_flows_overflow_total", {}, 1, 100000000},
    {"ip_discovery", KeyType::kBool, "no",
     "replace this host's internal address in fireflies by its public one (static mapping or STUN); "
     "discovered at start and on reload", "IP_DISCOVERY_ENABLED"},
    {"stun_servers", KeyType::kList, "stun.l.google.com:19302, stun.services.mozilla.org:3478",
     "STUN servers (host[:port], default port 3478) asked in order for the public address"},
    {"public_ip4", KeyType::kIPv4, "", "static public IPv4 address for ip_discovery (no STUN for IPv4)"},
    {"public_ip6", KeyType::kIPv6, "", "static public IPv6 address for ip_discovery (no STUN for IPv6)"},
    {.name = "stun_timeout_ms", .type = KeyType::kDuration, .default_value = "2000", .help = "wait for each STUN answer",
     .min = 10, .max = 60000, .unit = DurationUnit::kMilliseconds, .resolution = DurationUnit::kMilliseconds},
    {"stun_attempts", KeyType::kInt, "3", "STUN requests per server before trying the next", {}, 1, 10},
    {"netlink", KeyType::kBool, "no",
     "add a netlink section (the socket's tcp_info, and `rtt` in ms) and `usage` (bytes received and sent) to "
     "fireflies of TCP flows on this host",
     "UDP_FIREFLY_NETLINK"},
    {.name = "ongoing_interval", .type = KeyType::kDuration, .default_value = "0",
     .help = "with netlink = yes: time between `ongoing` fireflies with fresh tcp_info while a flow lives; 0 = none",
     .min = 0, .max = 86400 * 1000},
    {"forward_observed", KeyType::kBool, "no",
     "send fireflies of observed flows (netflow: seen by a router) to `collector`; they never go to the flow's "
     "addresses"},
};
// clang-format on

// Host names are case-insensitive (RFC 4343); IP literals are compared as addresses, an IPv4-mapped
// IPv6 address (::ffff:192.0.2.1) as the IPv4 address it maps. Names that resolve to one address
// are found when they are looked up (collector_resolver.hpp).
bool same_collector(const net::Endpoint& a, const net::Endpoint& b) {
  if (a.port != b.port) return false;
  auto ia = IpAddress::parse(a.host), ib = IpAddress::parse(b.host);
  // SocketAddress::address() gives an IPv4-mapped address back as IPv4.
  if (ia && ib)
    return net::SocketAddress::of(*ia, a.port).address() ==
           net::SocketAddress::of(*ib, b.port).address();
  if (ia || ib) return false;
  return a.host.size() == b.host.size() &&
         std::equal(a.host.begin(), a.host.end(), b.host.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

ConfigError key_error(const Section& cfg, std::string_view key, std::string_view why) {
  return ConfigError("[" + cfg.name() + "] " + std::string(key) + ": " + std::string(why));
}

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

UdpFireflyConfig UdpFireflyConfig::from(const Section& cfg) {
  UdpFireflyConfig c;
  c.port = static_cast<std::uint16_t>(cfg.get_int("port"));
  for (const std::string& text : cfg.get_list("collector")) {
    auto ep = net::parse_endpoint(text, c.port);
    if (!ep) throw key_error(cfg, "collector", "cannot parse '" + text + "'");
    for (const auto& other : c.collectors)
      if (same_collector(other, *ep))
        throw key_error(cfg, "collector",
                        other.to_string() == ep->to_string()
                            ? fmt::format("'{}' is listed twice", ep->to_string())
                            : fmt::format("'{}' is listed twice (as '{}')", ep->to_string(),
                                          other.to_string()));
    c.collectors.push_back(std::move(*ep));
  }
  // Each collector is a label value of the per-collector metrics: the set stays small.
  if (c.collectors.size() > kMaxCollectors)
    throw key_error(
        cfg, "collector",
        fmt::format("at most {} collectors, got {}", kMaxCollectors, c.collectors.size()));
  c.collector_resolve_interval = cfg.get_duration("collector_resolve_interval");
  c.ip4_src = cfg.get("ip4_src");
  c.ip6_src = cfg.get("ip6_src");
  c.syslog_header = cfg.get_bool("syslog_header");
  c.max_tracked_flows = static_cast<std::size_t>(cfg.get_int("max_tracked_flows"));
  c.ip_discovery = cfg.get_bool("ip_discovery");
  c.discovery.stun_servers = cfg.get_list("stun_servers");
  c.discovery.public_ip4 = cfg.get("public_ip4");
  c.discovery.public_ip6 = cfg.get("public_ip6");
  c.discovery.timeout = std::chrono::milliseconds(cfg.get_int("stun_timeout_ms"));
  c.discovery.attempts = static_cast<int>(cfg.get_int("stun_attempts"));
  c.netlink = cfg.get_bool("netlink");
  c.ongoing_interval = std::chrono::seconds(cfg.get_int("ongoing_interval"));
  if (c.ongoing_interval.count() > 0 && !c.netlink)
    throw key_error(cfg, "ongoing_interval", "needs netlink = yes");
  c.forward_observed = cfg.get_bool("forward_observed");
  if (c.forward_observed && c.collectors.empty())
    throw key_error(cfg, "forward_observed", "needs collector (observed flows go nowhere else)");
  return c;
}

}  // namespace flowd::udp_firefly
