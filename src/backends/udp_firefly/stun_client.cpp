// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/stun_client.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "common/net/endpoint.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"
#include "flowd/stop_fd.hpp"

namespace flowd::udp_firefly {
namespace {

constexpr std::uint32_t kMagicCookie = 0x2112A442;
constexpr std::uint16_t kBindingRequest = 0x0001;
constexpr std::uint16_t kBindingSuccess = 0x0101;
constexpr std::uint16_t kBindingError = 0x0111;
constexpr std::uint16_t kMappedAddress = 0x0001;
constexpr std::uint16_t kXorMappedAddress = 0x0020;
constexpr std::uint16_t kErrorCode = 0x0009;

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// MAPPED-ADDRESS and XOR-MAPPED-ADDRESS share a layout: 0, family (1 = IPv4, 2 = IPv6), port,
// address.
bool read_address(std::span<const std::uint8_t> v, bool xored, const std::uint8_t* header,
                  StunAnswer& out) {
  if (v.size() < 4) return false;
  std::size_t len = v[1] == 1 ? 4 : v[1] == 2 ? 16 : 0;
  if (len == 0 || v.size() != 4 + len) return false;
  IpAddress a;
  a.family = len == 4 ? AF_INET : AF_INET6;
  std::uint16_t port = be16(v.data() + 2);
  for (std::size_t i = 0; i < len; ++i) a.bytes[i] = v[4 + i];
  if (xored) {
    // Port with the cookie's high half; address with cookie + transaction id (header bytes 4..19).
    port ^= static_cast<std::uint16_t>(kMagicCookie >> 16);
    for (std::size_t i = 0; i < len; ++i) a.bytes[i] ^= header[4 + i];
  }
  out.address = a;
  out.port = port;
  out.xor_mapped = xored;
  return true;
}

}  // namespace

std::array<std::uint8_t, 20> stun_binding_request(const StunTransactionId& id) {
  std::array<std::uint8_t, 20> m{};
  m[0] = kBindingRequest >> 8;
  m[1] = kBindingRequest & 0xFF;
  // length 0: no attributes
  m[4] = kMagicCookie >> 24;
  m[5] = (kMagicCookie >> 16) & 0xFF;
  m[6] = (kMagicCookie >> 8) & 0xFF;
  m[7] = kMagicCookie & 0xFF;
  std::memcpy(m.data() + 8, id.data(), id.size());
  return m;
}

StunAnswer parse_stun_response(std::span<const std::uint8_t> m, const StunTransactionId& id) {
  StunAnswer out;
  if (m.size() < 20) {
    out.error = fmt::format("{} bytes, shorter than a STUN header", m.size());
    return out;
  }
  std::uint16_t type = be16(m.data()), length = be16(m.data() + 2);
  if ((m[0] & 0xC0) != 0 || be32(m.data() + 4) != kMagicCookie) {
    out.error = "not a STUN message (magic cookie)";
    return out;
  }
  if (std::memcmp(m.data() + 8, id.data(), id.size()) != 0) {
    out.error = "answer to another transaction";
    return out;
  }
  if (length % 4 != 0 || m.size() != 20u + length) {
    out.error =
        fmt::format("length field {} does not match the {} bytes received", length, m.size());
    return out;
  }
  if (type != kBindingSuccess && type != kBindingError) {
    out.error = fmt::format("message type 0x{:04x} is not a Binding response", type);
    return out;
  }
  StunAnswer mapped;  // MAPPED-ADDRESS, used only without XOR-MAPPED-ADDRESS
  std::string error_text;
  std::size_t pos = 20;
  while (pos + 4 <= m.size()) {
    std::uint16_t at = be16(m.data() + pos), alen = be16(m.data() + pos + 2);
    std::size_t padded = (alen + 3u) & ~std::size_t{3};
    if (pos + 4 + padded > m.size()) {
      out.error = fmt::format("attribute 0x{:04x} runs past the end of the message", at);
      out.address.reset();
      return out;
    }
    auto value = m.subspan(pos + 4, alen);
    if (at == kXorMappedAddress && !out.address) read_address(value, true, m.data(), out);
    if (at == kMappedAddress && !mapped.address) read_address(value, false, m.data(), mapped);
    if (at == kErrorCode && alen >= 4)
      error_text =
          fmt::format("{} {}", value[2] * 100 + value[3] % 100,
                      std::string(reinterpret_cast<const char*>(value.data()) + 4, alen - 4));
    pos += 4 + padded;
  }
  if (type == kBindingError) {
    out = {};
    out.error = "Binding error response" + (error_text.empty() ? "" : ": " + error_text);
    return out;
  }
  if (!out.address && mapped.address) out = mapped;
  if (!out.address) out.error = "no (XOR-)MAPPED-ADDRESS in the Binding response";
  return out;
}

StunAnswer stun_query(const std::string& server, int family, std::chrono::milliseconds timeout,
                      int attempts, std::stop_token stop) {
  StunAnswer out;
  auto ep = net::parse_endpoint(server, kStunDefaultPort);
  if (!ep) {
    out.error = "cannot parse '" + server + "' as host[:port]";
    return out;
  }
  net::SocketAddress to;
  try {
    to = net::resolve(ep->host, ep->port, {.family = family}).front();
  } catch (const std::runtime_error& e) {
    out.error = fmt::format("{} for {}", e.what(), family == AF_INET6 ? "IPv6" : "IPv4");
    return out;
  }
  UniqueFd fd(::socket(to.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  // Connected: the kernel drops datagrams from anyone but the server.
  if (!fd || ::connect(fd.get(), to.get(), to.length) != 0) {
    out.error = fmt::format("cannot reach {}: {}", ep->to_string(), std::strerror(errno));
    return out;
  }
  std::random_device rd;
  StunTransactionId id;
  for (auto& b : id) b = static_cast<std::uint8_t>(rd());
  auto request = stun_binding_request(id);
  out.error = fmt::format("no answer from {} after {} attempts of {} ms", ep->to_string(), attempts,
                          timeout.count());
  StopFd stopfd(stop);
  for (int attempt = 0; attempt < attempts && !stop.stop_requested(); ++attempt) {
    if (::send(fd.get(), request.data(), request.size(), 0) < 0) {
      out.error = fmt::format("sending to {}: {}", ep->to_string(), std::strerror(errno));
      continue;  // e.g. ECONNREFUSED from an earlier ICMP error: try again
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p[2] = {{fd.get(), POLLIN, 0}, {stopfd.fd(), POLLIN, 0}};
      if (::poll(p, 2, static_cast<int>(left.count())) <= 0) break;
      if (p[1].revents) {
        out.error = "abandoned: flowd is stopping";
        break;
      }
      std::array<std::uint8_t, 1500> buf;
      ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
      if (n < 0) {
        // E.g. ECONNREFUSED (ICMP port unreachable): the server is not up (yet); the attempt runs
        // out its timeout before the next one.
        out.error = fmt::format("from {}: {}", ep->to_string(), std::strerror(errno));
        continue;
      }
      auto a = parse_stun_response(
          std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)), id);
      if (a.address || a.error.starts_with("Binding error")) {
        if (!a.address) a.error = ep->to_string() + ": " + a.error;
        return a;
      }
      out.error =
          fmt::format("from {}: {}", ep->to_string(), a.error);  // stray datagram: keep waiting
    }
  }
  return out;
}

}  // namespace flowd::udp_firefly
