// SPDX-License-Identifier: Apache-2.0
// IPFIX over TCP (RFC 7011 §10.4): the listening socket, and one session per exporter connection
// with its own templates (RFC 7011 §8: templates belong to the Transport Session) and its stream
// framer.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "collector/decoder.hpp"
#include "collector/ipfix_stream_framer.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"

namespace flowd::netflow {

// A bound, listening, non-blocking TCP socket on `endpoint`. Throws std::runtime_error when the
// host does not resolve and std::system_error "<owner>cannot listen on TCP <address> (<call>)"
// otherwise.
UniqueFd open_tcp_listener(const net::Endpoint& endpoint, const std::string& owner);

class TcpSession {
 public:
  // Wraps an accepted, non-blocking connection from `peer`.
  TcpSession(UniqueFd fd, collector::Exporter peer, const collector::DecoderLimits& limits);

  int fd() const { return fd_.get(); }
  const collector::Exporter& peer() const { return peer_; }
  collector::Decoder& decoder() { return *decoder_; }
  const collector::Decoder& decoder() const { return *decoder_; }

  enum class State : std::uint8_t {
    kOpen,       // read until EAGAIN; wait for more
    kClosed,     // the peer closed (end of stream)
    kFailed,     // recv() failed (ECONNRESET, ETIMEDOUT...)
    kOutOfSync,  // a header that is not IPFIX or a length < 16: the stream cannot be framed
  };

  // Reads what is waiting and hands every whole message to on_message(std::span<const
  // std::uint8_t>).
  template <class F>
  State read(F&& on_message) {
    std::array<std::uint8_t, 65536> buf;
    while (true) {
      const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n == 0) return State::kClosed;
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return State::kOpen;
      if (n < 0) {
        error_ = errno;
        return State::kFailed;
      }
      last_active_ = std::chrono::steady_clock::now();
      if (framer_.feed(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)),
                       on_message) == collector::IpfixStreamFramer::Status::kOutOfSync)
        return State::kOutOfSync;
    }
  }
  // After kOutOfSync: the Length field of the header that broke the framing.
  std::size_t bad_length() const;
  // After kFailed: the errno of recv().
  int error() const { return error_; }
  // When the peer last sent bytes (or connected): what the idle timeout measures.
  std::chrono::steady_clock::time_point last_active() const { return last_active_; }

 private:
  UniqueFd fd_;
  collector::Exporter peer_;
  collector::IpfixStreamFramer framer_;
  std::unique_ptr<collector::Decoder> decoder_;  // stays put while sessions move in their map
  std::chrono::steady_clock::time_point last_active_ = std::chrono::steady_clock::now();
  int error_ = 0;
};

}  // namespace flowd::netflow
