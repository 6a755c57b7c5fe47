// SPDX-License-Identifier: Apache-2.0
// host[:port] as written in config files: "127.0.0.1:9000", "[::1]:9000", "::1",
// "collector.example".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flowd::net {

struct Endpoint {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  std::string to_string() const;  // brackets around IPv6 literals
};

std::optional<Endpoint> parse_endpoint(std::string_view text, std::uint16_t default_port);

}  // namespace flowd::net
