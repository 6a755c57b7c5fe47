// SPDX-License-Identifier: Apache-2.0
#include "common/net/udp_listener.hpp"

#include <netinet/in.h>
#include <sys/uio.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace flowd::net {
namespace {

struct Failure {
  const std::string& owner;
  const SocketAddress& where;
  [[noreturn]] void operator()(const char* call) const {
    throw std::system_error(
        errno, std::generic_category(),
        owner + "cannot listen on UDP " + where.to_string() + " (" + call + ")");
  }
};

void set_option(int fd, int level, int name, int value, const char* call, const Failure& fail) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) fail(call);
}

bool is_ipv6_wildcard(const SocketAddress& a) {
  if (a.family() != AF_INET6) return false;
  const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  return IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

}  // namespace

UdpListener::UdpListener(const std::string& host, std::uint16_t port,
                         const UdpBindOptions& options) {
  std::vector<SocketAddress> resolved;
  try {
    resolved = resolve(host, port, {.socktype = SOCK_DGRAM, .passive = true});
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(options.owner + e.what());
  }
  const SocketAddress& where = resolved.front();
  const Failure fail{options.owner, where};
  fd_.reset(::socket(where.family(), SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd_) fail("socket");
  const int fd = fd_.get();
  set_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", fail);
  if (options.reuse_port) set_option(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", fail);
  if (is_ipv6_wildcard(where)) set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY", fail);
  if (options.rcvbuf > 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &options.rcvbuf, sizeof options.rcvbuf) != 0)
    set_option(fd, SOL_SOCKET, SO_RCVBUF, options.rcvbuf, "SO_RCVBUF", fail);
  if (::bind(fd, where.get(), where.length) != 0) fail("bind");
  local_.length = sizeof local_.storage;
  if (::getsockname(fd, local_.get(), &local_.length) != 0) fail("getsockname");
}

DatagramBatch::DatagramBatch(std::size_t batch, std::size_t max_datagram)
    : max_datagram_(max_datagram),
      buffers_(batch * max_datagram),
      iov_(batch),
      messages_(batch),
      senders_(batch) {}

std::size_t DatagramBatch::receive_raw(int fd) {
  for (std::size_t i = 0; i < messages_.size(); ++i) {
    iov_[i] = {buffers_.data() + i * max_datagram_, max_datagram_};
    messages_[i] = {};
    messages_[i].msg_hdr.msg_iov = &iov_[i];
    messages_[i].msg_hdr.msg_iovlen = 1;
    messages_[i].msg_hdr.msg_name = &senders_[i].storage;
    messages_[i].msg_hdr.msg_namelen = sizeof senders_[i].storage;
  }
  // MSG_TRUNC: msg_len is the datagram's real length, so a truncated one is recognised.
  const int n = ::recvmmsg(fd, messages_.data(), static_cast<unsigned>(messages_.size()),
                           MSG_DONTWAIT | MSG_TRUNC, nullptr);
  if (n <= 0) return 0;
  for (int i = 0; i < n; ++i)
    senders_[static_cast<std::size_t>(i)].length =
        messages_[static_cast<std::size_t>(i)].msg_hdr.msg_namelen;
  return static_cast<std::size_t>(n);
}

}  // namespace flowd::net
