// SPDX-License-Identifier: Apache-2.0
// One UDP receive socket, bound with the options every flowd listener needs, and a recvmmsg(2)
// batch reader. The netflow/sflow workers and the firefly listener use it (two hand-written copies
// before, which had drifted apart on IPV6_V6ONLY; structure review §3.9 #3).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"

namespace flowd::net {

struct UdpBindOptions {
  // SO_REUSEPORT: several sockets (one per receive worker) share the address and the kernel hashes
  // each sender to one of them (socket(7)).
  bool reuse_port = false;
  // Receive buffer in bytes: SO_RCVBUFFORCE (needs CAP_NET_ADMIN, ignores net.core.rmem_max), else
  // SO_RCVBUF (capped by rmem_max). 0 keeps the kernel default.
  int rcvbuf = 0;
  // Put before error messages, to name who listens: "[plugin.firefly] ".
  std::string owner;
};

// A bound, non-blocking, close-on-exec UDP socket. SO_REUSEADDR is always set; a socket bound to
// the IPv6 wildcard "::" gets IPV6_V6ONLY=0, so that it takes IPv4 too (as v4-mapped senders,
// which SocketAddress::address() unmaps) whatever net.ipv6.bindv6only says.
class UdpListener {
 public:
  UdpListener() = default;
  // Resolves `host` (numeric or a name; empty: the IPv4 wildcard) and `port` as getaddrinfo(3)
  // does with AI_PASSIVE, and binds to the first result. Throws std::runtime_error when the name
  // does not resolve, std::system_error (errno) otherwise, whose what() reads
  // "<owner>cannot listen on UDP <address> (<failed call>): <strerror>".
  UdpListener(const std::string& host, std::uint16_t port, const UdpBindOptions& options);

  int fd() const { return fd_.get(); }
  explicit operator bool() const { return static_cast<bool>(fd_); }
  // The address bound to (getsockname(2)): the port the kernel chose for port 0.
  const SocketAddress& local() const { return local_; }
  void close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  SocketAddress local_;
};

// One received datagram, valid during the callback only.
struct Datagram {
  std::span<const std::uint8_t> payload;  // at most the batch's max_datagram bytes
  const SocketAddress& sender;
  std::size_t length;  // on the wire; > payload.size() when the datagram was truncated
  bool truncated() const { return length > payload.size(); }
};

// The buffers of one recvmmsg(2) batch, allocated once and reused for every read, so that receiving
// allocates nothing per datagram. One per receiving thread; it can read from any UDP socket.
class DatagramBatch {
 public:
  // `batch`: datagrams per recvmmsg call; `max_datagram`: bytes kept of each (a longer one is
  // truncated and says so).
  DatagramBatch(std::size_t batch, std::size_t max_datagram);

  // One non-blocking recvmmsg(2) on `fd`: calls on_datagram(const Datagram&) for each datagram
  // read, in arrival order, and returns how many there were (0 when none was waiting or on an
  // error; the caller waits for readiness again).
  template <class F>
  std::size_t receive(int fd, F&& on_datagram) {
    const std::size_t n = receive_raw(fd);
    for (std::size_t i = 0; i < n; ++i) {
      const Datagram d{
          std::span<const std::uint8_t>(buffers_.data() + i * max_datagram_, payload_length(i)),
          senders_[i], messages_[i].msg_len};
      on_datagram(d);
    }
    return n;
  }

  std::size_t batch() const { return messages_.size(); }

 private:
  std::size_t receive_raw(int fd);
  std::size_t payload_length(std::size_t i) const {
    return messages_[i].msg_len < max_datagram_ ? messages_[i].msg_len : max_datagram_;
  }

  std::size_t max_datagram_;
  std::vector<std::uint8_t> buffers_;  // batch x max_datagram, one slice per message
  std::vector<iovec> iov_;
  std::vector<mmsghdr> messages_;
  std::vector<SocketAddress> senders_;
};

}  // namespace flowd::net
