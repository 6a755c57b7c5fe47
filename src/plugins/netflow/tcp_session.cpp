// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/tcp_session.hpp"

#include <system_error>
#include <vector>

namespace flowd::netflow {

UniqueFd open_tcp_listener(const net::Endpoint& endpoint, const std::string& owner) {
  std::vector<net::SocketAddress> resolved;
  try {
    resolved =
        net::resolve(endpoint.host, endpoint.port, {.socktype = SOCK_STREAM, .passive = true});
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(owner + e.what());
  }
  const net::SocketAddress& where = resolved.front();
  auto fail = [&](const char* call) {
    throw std::system_error(
        errno, std::generic_category(),
        owner + "cannot listen on TCP " + where.to_string() + " (" + call + ")");
  };
  UniqueFd fd(::socket(where.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) fail("socket");
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) fail("SO_REUSEADDR");
  if (::bind(fd.get(), where.get(), where.length) != 0) fail("bind");
  if (::listen(fd.get(), 64) != 0) fail("listen");
  return fd;
}

TcpSession::TcpSession(UniqueFd fd, collector::Exporter peer,
                       const collector::DecoderLimits& limits)
    : fd_(std::move(fd)), peer_(peer) {
  collector::DecoderLimits l = limits;
  l.udp = false;  // withdrawals honoured, no expiry (RFC 7011 §8.1)
  decoder_ = std::make_unique<collector::Decoder>(l);
}

std::size_t TcpSession::bad_length() const {
  const auto rest = framer_.unframed();
  return rest.size() >= 4 ? static_cast<std::size_t>(rest[2] << 8 | rest[3]) : 0;
}

}  // namespace flowd::netflow
