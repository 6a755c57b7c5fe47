// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/api_config.hpp"

#include <stdexcept>

#include "common/local_path.hpp"
#include "flowd/flow_id.hpp"

namespace flowd::api {
namespace {

constexpr long kSecond = 1000;

constexpr KeySpec kKeys[] = {
    {.name = "socket",
     .type = KeyType::kPath,
     .default_value = "/run/flowd.sock",
     .help = "unix socket the HTTP API listens on; empty: none",
     .empty_allowed = true},
    {"mode", KeyType::kMode, "0666",
     "permissions set on the unix socket (who may connect: whoever may write it)"},
    {"group", KeyType::kString, "",
     "group owning the unix socket (name or number); empty: flowd's group"},
    {"listen", KeyType::kEndpoint, "",
     "TCP address the HTTP API listens on as well (an IP address, default port 8787); empty: none. "
     "A loopback address unless public = yes"},
    {"public", KeyType::kBool, "no",
     "allow a listen address that is not loopback (anyone who reaches it can report flows)"},
    {"threads",
     KeyType::kInt,
     "8",
     "connections served at once on each listener (the unix socket and listen have a pool each); "
     "a slow client holds one for at most request_timeout",
     {},
     1,
     256},
    {"queue",
     KeyType::kInt,
     "64",
     "accepted connections waiting for a thread, per listener; beyond it connections wait in the "
     "kernel's backlog",
     {},
     1,
     65536},
    {"max_body",
     KeyType::kInt,
     "262144",
     "largest request body in bytes (larger: 413, reason too_large)",
     {},
     1024,
     16777216},
    {"max_flows",
     KeyType::kInt,
     "1000",
     "most flows in one POST (more: 413, reason too_many)",
     {},
     1,
     100000},
    {.name = "timeout",
     .type = KeyType::kDuration,
     .default_value = "5s",
     .help = "a read or write on a connection that makes no progress this long ends it",
     .min = 100,
     .max = 300 * kSecond,
     .unit = DurationUnit::kSeconds,
     .resolution = DurationUnit::kMilliseconds},
    {.name = "request_timeout",
     .type = KeyType::kDuration,
     .default_value = "10s",
     .help = "a request not received whole this long after its first byte ends the connection "
             "(closed, or 400 when its body was cut short)",
     .min = 100,
     .max = 300 * kSecond,
     .unit = DurationUnit::kSeconds,
     .resolution = DurationUnit::kMilliseconds},
    {.name = "keep_alive_timeout",
     .type = KeyType::kDuration,
     .default_value = "5s",
     .help = "an idle keep-alive connection is closed after this long",
     .min = 100,
     .max = 300 * kSecond,
     .unit = DurationUnit::kSeconds,
     .resolution = DurationUnit::kMilliseconds},
    {"keep_alive_max",
     KeyType::kInt,
     "100",
     "requests served on one connection before it is closed",
     {},
     1,
     100000},
    {.name = "check_interval",
     .type = KeyType::kDuration,
     .default_value = "60",
     .help = "time between two checks of the TCP flows the API started against the kernel's "
             "sockets (one sock_diag dump): a flow whose connection is no longer open is ended "
             "then, with the check's time, as if its tool had posted its end; 0 = no check",
     .min = 0,
     .max = 3600 * kSecond,
     .unit = DurationUnit::kSeconds,
     .resolution = DurationUnit::kSeconds},
};

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  auto a = IpAddress::parse(host);
  if (!a) return false;
  if (a->is_v4()) return a->bytes[0] == 127;
  static constexpr std::array<std::uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                           0, 0, 0, 0, 0, 0, 0, 1};
  if (a->bytes == kLoopback6) return true;
  // ::ffff:127.x.y.z
  for (int i = 0; i < 10; ++i)
    if (a->bytes[i] != 0) return false;
  return a->bytes[10] == 0xff && a->bytes[11] == 0xff && a->bytes[12] == 127;
}

ApiConfig ApiConfig::from(const Section& cfg) {
  ApiConfig c;
  c.socket = cfg.get("socket");
  c.mode = static_cast<mode_t>(std::stoul(cfg.get("mode"), nullptr, 8));
  if (!cfg.get("group").empty()) {
    try {
      c.group = resolve_group(cfg.get("group"));
    } catch (const std::exception& e) {
      throw ConfigError("[plugin.api] group: " + std::string(e.what()));
    }
  }
  c.is_public = cfg.get_bool("public");
  if (auto text = cfg.get("listen"); !text.empty()) {
    auto ep = net::parse_endpoint(text, kDefaultPort);
    if (!ep) throw ConfigError("[plugin.api] listen: '" + text + "' is not host[:port]");
    if (ep->host == "localhost") ep->host = "127.0.0.1";
    if (!IpAddress::parse(ep->host))
      throw ConfigError("[plugin.api] listen: '" + ep->host +
                        "' is not an IP address (a name could resolve to anything)");
    if (!c.is_public && !is_loopback_host(ep->host))
      throw ConfigError("[plugin.api] listen: " + ep->host +
                        " is not a loopback address: anyone who reaches it could report flows "
                        "that flowd marks and announces; use 127.0.0.1 or ::1, or set public = "
                        "yes");
    c.listen = *ep;
  }
  if (c.socket.empty() && !c.listen)
    throw ConfigError(
        "[plugin.api] socket and listen are both empty: the API would listen nowhere");
  c.threads = static_cast<std::size_t>(cfg.get_int("threads"));
  c.queue = static_cast<std::size_t>(cfg.get_int("queue"));
  c.max_body = static_cast<std::size_t>(cfg.get_int("max_body"));
  c.max_flows = static_cast<std::size_t>(cfg.get_int("max_flows"));
  c.timeout = cfg.get_duration("timeout");
  c.request_timeout = cfg.get_duration("request_timeout");
  c.keep_alive_timeout = cfg.get_duration("keep_alive_timeout");
  c.keep_alive_max = static_cast<std::size_t>(cfg.get_int("keep_alive_max"));
  c.check_interval =
      std::chrono::duration_cast<std::chrono::seconds>(cfg.get_duration("check_interval"));
  return c;
}

}  // namespace flowd::api
