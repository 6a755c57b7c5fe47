// SPDX-License-Identifier: Apache-2.0
// Service and protocol names from the system's databases (services(5), read once with
// getservent_r, or through getservbyport_r when it cannot be enumerated; protocols(5) through
// getprotobynumber_r), cached: glibc reads /etc/services on every getservbyport_r call.
// Not thread-safe: one per output thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace flowd::analyze {

struct Connection;

// The port that names a connection's service, and that name (empty when services(5) has none).
struct Service {
  std::uint16_t port = 0;
  std::string name;
  bool has_port = false;  // false for protocols without ports (ICMP...)
};

class ServiceNames {
 public:
  // The services(5) name of `port` for a protocol with ports (TCP 6, UDP 17, DCCP 33, SCTP 132);
  // nullptr when there is none.
  const std::string* port_name(std::uint16_t port, std::uint8_t protocol);
  // "tcp", "udp", "ipv6-icmp"...: the protocols(5) name, else the number.
  const std::string& protocol_name(std::uint8_t protocol);
  // The well-known side of a connection: the port services(5) names (both named: the one below
  // 1024, else the destination's); neither named: the lower port, without a name.
  Service service(const Connection& c);

 private:
  void load();

  bool loaded_ = false, enumerated_ = false;
  std::unordered_map<std::uint32_t, std::optional<std::string>> ports_;  // (protocol << 16 | port)
  std::unordered_map<std::uint8_t, std::string> protocols_;
};

}  // namespace flowd::analyze
