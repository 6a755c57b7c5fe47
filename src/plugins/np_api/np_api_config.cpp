// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/np_api_config.hpp"

#include <stdexcept>

#include "common/local_path.hpp"

namespace flowd::np_api {
namespace {

constexpr KeySpec kKeys[] = {
    {"path", KeyType::kPath, "/var/run/flowd", "the named pipe (FIFO) transfer services write to",
     "NP_API_FILE"},
    {"mode", KeyType::kMode, "0666",
     "permissions set on the pipe, whether flowd made it or found its own pipe there"},
    {"group", KeyType::kString, "", "group owning the pipe (name or number); empty: flowd's group"},
    {"max_line_length",
     KeyType::kInt,
     "4096",
     "longer lines are rejected (reason too_long)",
     {},
     64,
     65536},
    {.name = "partial_timeout_ms",
     .type = KeyType::kDuration,
     .default_value = "1000",
     .help = "a line without its newline for this long is discarded (reason truncated)",
     .min = 10,
     .max = 600000,
     .unit = DurationUnit::kMilliseconds,
     .resolution = DurationUnit::kMilliseconds},
    {.name = "check_interval",
     .type = KeyType::kDuration,
     .default_value = "60",
     .help = "time between two checks of the TCP flows the pipe started against the kernel's "
             "sockets (one sock_diag dump): a flow whose connection is no longer open is ended "
             "then, with the check's time, as if its tool had written its end; 0 = no check",
     .min = 0,
     .max = 3600 * 1000,
     .unit = DurationUnit::kSeconds,
     .resolution = DurationUnit::kSeconds},
};

}  // namespace

std::span<const KeySpec> config_keys() {
  return kKeys;
}

NpApiConfig NpApiConfig::from(const Section& cfg) {
  NpApiConfig c;
  c.path = cfg.get("path");
  c.mode = static_cast<mode_t>(std::stoul(cfg.get("mode"), nullptr, 8));
  if (!cfg.get("group").empty()) {
    try {
      c.group = resolve_group(cfg.get("group"));
    } catch (const std::exception& e) {
      throw ConfigError("[plugin.np_api] group: " + std::string(e.what()));
    }
  }
  c.max_line_length = static_cast<std::size_t>(cfg.get_int("max_line_length"));
  c.partial_timeout = std::chrono::milliseconds(cfg.get_int("partial_timeout_ms"));
  c.check_interval =
      std::chrono::duration_cast<std::chrono::seconds>(cfg.get_duration("check_interval"));
  return c;
}

}  // namespace flowd::np_api
