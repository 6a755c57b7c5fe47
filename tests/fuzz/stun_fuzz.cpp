// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: STUN Binding responses as a (possibly hostile) server sends them.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "backends/udp_firefly/stun_client.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The transaction id is the one in the message (bytes 8..19) or a fixed one: both paths matter.
  flowd::udp_firefly::StunTransactionId id{};
  if (size >= 20 && (data[0] & 1) == 0)
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = data[8 + i];
  auto a = flowd::udp_firefly::parse_stun_response(std::span<const std::uint8_t>(data, size), id);
  if (a.address && a.address->family != AF_INET && a.address->family != AF_INET6) __builtin_trap();
  if (!a.address && a.error.empty()) __builtin_trap();
  return 0;
}
