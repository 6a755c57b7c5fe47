// SPDX-License-Identifier: Apache-2.0
// A minimal STUN client (RFC 5389 Binding): asks a STUN server which address it sees us as, which
// behind NAT is the public one. The message functions are pure and fuzzed
// (tests/fuzz/stun_fuzz.cpp).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <stop_token>
#include <string>

#include "flowd/flow_id.hpp"

namespace flowd::udp_firefly {

using StunTransactionId = std::array<std::uint8_t, 12>;
inline constexpr std::uint16_t kStunDefaultPort = 3478;

struct StunAnswer {
  std::optional<IpAddress> address;  // the mapped address, when the server told us
  std::uint16_t port = 0;
  bool xor_mapped = false;  // from XOR-MAPPED-ADDRESS (else the RFC 3489 MAPPED-ADDRESS)
  std::string error;        // why there is no address
};

std::array<std::uint8_t, 20> stun_binding_request(const StunTransactionId& id);
// Reads a Binding success response for transaction `id`: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
StunAnswer parse_stun_response(std::span<const std::uint8_t> message, const StunTransactionId& id);

// Sends Binding requests to `server` ("host", "host:port", "[v6]:port") over `family` (AF_INET or
// AF_INET6): `attempts` tries, each waiting up to `timeout` for the answer. Returns at once,
// without an address, when `stop` is requested.
StunAnswer stun_query(const std::string& server, int family, std::chrono::milliseconds timeout,
                      int attempts, std::stop_token stop = {});

}  // namespace flowd::udp_firefly
