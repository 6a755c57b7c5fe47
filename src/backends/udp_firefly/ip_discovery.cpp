// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/ip_discovery.hpp"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "backends/udp_firefly/stun_client.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"

namespace flowd::udp_firefly {
namespace {

bool in_prefix(const IpAddress& a, const char* prefix, unsigned len) {
  auto p = IpAddress::parse(prefix);
  if (!p || p->family != a.family) return false;
  unsigned full = len / 8, rest = len % 8;
  for (unsigned i = 0; i < full; ++i)
    if (p->bytes[i] != a.bytes[i]) return false;
  auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return rest == 0 || (p->bytes[full] & mask) == (a.bytes[full] & mask);
}

std::optional<IpAddress> discover_public(int family, const std::optional<IpAddress>& internal,
                                         const std::string& fixed, const IpDiscoveryOptions& o,
                                         spdlog::logger& log, std::stop_token stop) {
  const char* name = family == AF_INET6 ? "IPv6" : "IPv4";
  if (!fixed.empty()) {
    auto a = IpAddress::parse(fixed);
    if (a && a->family == family) return a;
    log.warn("IP discovery: public_ip{} '{}' is not an {} address; ignored",
             family == AF_INET6 ? 6 : 4, fixed, name);
  }
  if (!internal) {
    log.info("IP discovery: no {} route, nothing to map", name);
    return std::nullopt;
  }
  if (!is_private(*internal)) {
    log.info("IP discovery: internal {} address {} is public already", name, internal->to_string());
    return internal;
  }
  for (const auto& server : o.stun_servers) {
    if (stop.stop_requested()) return std::nullopt;
    auto answer = stun_query(server, family, o.timeout, o.attempts, stop);
    if (answer.address && answer.address->family == family) {
      log.info("IP discovery: STUN server {} sees {} as {}{}", server, internal->to_string(),
               answer.address->to_string(), answer.xor_mapped ? "" : " (MAPPED-ADDRESS)");
      return answer.address;
    }
    log.warn("IP discovery: STUN server {} ({}): {}", server, name,
             answer.address ? "answered with an address of the other family" : answer.error);
  }
  log.warn("IP discovery: no public {} address found for {}; fireflies keep the internal address",
           name, internal->to_string());
  return std::nullopt;
}

}  // namespace

std::optional<IpAddress> AddressMapping::public_for(const IpAddress& a) const {
  const auto& in = a.is_v6() ? internal6 : internal4;
  const auto& pub = a.is_v6() ? public6 : public4;
  if (in && pub && *in == a && *pub != a) return pub;
  return std::nullopt;
}

std::optional<IpAddress> local_address_towards(const std::string& probe) {
  auto p = IpAddress::parse(probe);
  if (!p) return std::nullopt;
  UniqueFd fd(::socket(p->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::nullopt;
  // connect() on UDP sends nothing: it only picks the route and the source address.
  const auto to = net::SocketAddress::of(*p, 1);
  if (::connect(fd.get(), to.get(), to.length) != 0) return std::nullopt;
  sockaddr_storage local{};
  socklen_t length = sizeof local;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0)
    return std::nullopt;
  return net::SocketAddress::of(local, length).address();
}

bool is_private(const IpAddress& a) {
  if (a.is_v4())
    return in_prefix(a, "10.0.0.0", 8) || in_prefix(a, "172.16.0.0", 12) ||
           in_prefix(a, "192.168.0.0", 16) || in_prefix(a, "100.64.0.0", 10) ||
           in_prefix(a, "198.18.0.0", 15) || in_prefix(a, "169.254.0.0", 16) ||
           in_prefix(a, "127.0.0.0", 8);
  return in_prefix(a, "fc00::", 7) || in_prefix(a, "fe80::", 10) || in_prefix(a, "::1", 128);
}

AddressMapping discover_addresses(const IpDiscoveryOptions& o, spdlog::logger& log,
                                  std::stop_token stop) {
  AddressMapping m;
  m.internal4 = local_address_towards(o.probe4);
  m.internal6 = local_address_towards(o.probe6);
  m.public4 = discover_public(AF_INET, m.internal4, o.public_ip4, o, log, stop);
  m.public6 = discover_public(AF_INET6, m.internal6, o.public_ip6, o, log, stop);
  return m;
}

}  // namespace flowd::udp_firefly
