// SPDX-License-Identifier: Apache-2.0
#include "analyze/service_names.hpp"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "analyze/connection_pairing.hpp"

namespace flowd::analyze {
namespace {

const char* port_protocol(std::uint8_t protocol) {
  switch (protocol) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 33:
      return "dccp";
    case 132:
      return "sctp";
    default:
      return nullptr;
  }
}

}  // namespace

const std::string* ServiceNames::port_name(std::uint16_t port, std::uint8_t protocol) {
  const char* proto = port_protocol(protocol);
  if (!proto) return nullptr;
  if (!loaded_) load();
  const std::uint32_t key = std::uint32_t{protocol} << 16 | port;
  auto it = ports_.find(key);
  if (it == ports_.end()) {
    if (enumerated_) return nullptr;  // the whole database is in ports_
    std::optional<std::string> name;
    servent entry{}, *found = nullptr;
    std::array<char, 4096> buf{};
    if (getservbyport_r(htons(port), proto, &entry, buf.data(), buf.size(), &found) == 0 && found &&
        found->s_name)
      name = found->s_name;
    it = ports_.emplace(key, std::move(name)).first;
  }
  return it->second ? &*it->second : nullptr;
}

void ServiceNames::load() {
  // getservbyport_r parses /etc/services on every call (most of the run time on a dump full of
  // ephemeral ports): read the database once, in its order, so the first entry of a port wins as it
  // does for getservbyport. A source that cannot be enumerated leaves ports_ empty, and each port
  // is then asked for (and cached) instead.
  loaded_ = true;
  static constexpr std::pair<const char*, std::uint8_t> kProtocols[] = {
      {"tcp", 6}, {"udp", 17}, {"dccp", 33}, {"sctp", 132}};
  setservent(0);
  servent entry{}, *found = nullptr;
  std::array<char, 4096> buf{};
  while (getservent_r(&entry, buf.data(), buf.size(), &found) == 0 && found) {
    if (!found->s_name || !found->s_proto) continue;
    for (auto [name, number] : kProtocols) {
      if (std::strcmp(found->s_proto, name) != 0) continue;
      const std::uint32_t key =
          std::uint32_t{number} << 16 | ntohs(static_cast<std::uint16_t>(found->s_port));
      ports_.try_emplace(key, found->s_name);
    }
  }
  endservent();
  enumerated_ = !ports_.empty();
}

const std::string& ServiceNames::protocol_name(std::uint8_t protocol) {
  auto it = protocols_.find(protocol);
  if (it == protocols_.end()) {
    std::string name = std::to_string(protocol);
    protoent entry{}, *found = nullptr;
    std::array<char, 4096> buf{};
    if (getprotobynumber_r(protocol, &entry, buf.data(), buf.size(), &found) == 0 && found &&
        found->p_name)
      name = found->p_name;
    it = protocols_.emplace(protocol, std::move(name)).first;
  }
  return it->second;
}

Service ServiceNames::service(const Connection& c) {
  Service s;
  if (!port_protocol(c.protocol)) return s;
  s.has_port = true;
  const std::string* dst = port_name(c.destination_port, c.protocol);
  const std::string* src = port_name(c.source_port, c.protocol);
  if (dst && src) {
    const bool src_wins = c.source_port < 1024 && c.destination_port >= 1024;
    s.port = src_wins ? c.source_port : c.destination_port;
    s.name = src_wins ? *src : *dst;
  } else if (dst || src) {
    s.port = dst ? c.destination_port : c.source_port;
    s.name = dst ? *dst : *src;
  } else {
    s.port = std::min(c.source_port, c.destination_port);
  }
  return s;
}

}  // namespace flowd::analyze
