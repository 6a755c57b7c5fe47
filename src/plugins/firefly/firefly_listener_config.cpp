// SPDX-License-Identifier: Apache-2.0
#include "plugins/firefly/firefly_listener_config.hpp"

namespace flowd::firefly {
namespace {

constexpr KeySpec kKeys[] = {
    {"host", KeyType::kString, "0.0.0.0", "address to listen on; `::` takes IPv4 and IPv6",
     "FIREFLY_LISTENER_HOST"},
    {"port", KeyType::kInt, "10514", "UDP port to listen on", "FIREFLY_LISTENER_PORT", 1, 65535},
    {"allow", KeyType::kList, "",
     "networks (CIDR, or single addresses) allowed to send fireflies; empty: any (others: reason "
     "not_allowed)"},
    {"max_size",
     KeyType::kInt,
     "16384",
     "larger datagrams are rejected (reason oversized)",
     {},
     512,
     65507},
    {"rcvbuf",
     KeyType::kInt,
     "8388608",
     "UDP receive buffer in bytes (SO_RCVBUF)",
     {},
     65536,
     1073741824},
};

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

FireflyListenerConfig FireflyListenerConfig::from(const Section& cfg) {
  FireflyListenerConfig c;
  c.host = cfg.get("host");
  c.port = static_cast<std::uint16_t>(cfg.get_int("port"));
  c.max_size = static_cast<std::size_t>(cfg.get_int("max_size"));
  c.rcvbuf = static_cast<int>(cfg.get_int("rcvbuf"));
  for (const auto& text : cfg.get_list("allow")) {
    std::string why;
    auto n = net::parse_network(text, why);
    if (!n) throw ConfigError("[plugin.firefly] allow: '" + text + "' " + why);
    c.allow.push_back(*n);
  }
  return c;
}

}  // namespace flowd::firefly
