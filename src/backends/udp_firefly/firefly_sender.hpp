// SPDX-License-Identifier: Apache-2.0
// udp_firefly's sending side: the pending batch of fireflies (each to the flow's peer, the
// collector or both), one sendmmsg() per address family per batch, the collector's resolution
// (retried every 30 s while it fails) and the sent/error accounting. The message buffers and the
// sendmmsg arrays are reused from batch to batch: no allocation per firefly once they have grown.
// Single-threaded: the udp_firefly backend's thread.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "common/net/endpoint.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/log.hpp"

namespace prometheus {
class Counter;
}

namespace flowd::udp_firefly {

// flowd_fireflies_sent_total and flowd_firefly_send_errors_total, by destination.
struct SendCounters {
  prometheus::Counter* sent_flow;
  prometheus::Counter* sent_collector;
  prometheus::Counter* errors_flow;
  prometheus::Counter* errors_collector;
};

class FireflySender {
 public:
  // Fireflies per batch: a full batch is sent at once.
  static constexpr std::size_t kBatch = 64;

  // port: the flow peers' firefly port; collector: where copies go (none: no copies).
  FireflySender(std::uint16_t port, std::optional<net::Endpoint> collector, SendCounters counters,
                std::shared_ptr<spdlog::logger> log);
  // The sockets (an IPv4 one is required: std::system_error; without IPv6 the IPv6 fireflies count
  // as send errors) and a first resolution of the collector.
  void open();

  // The buffer for the next firefly, empty (its capacity kept from earlier batches). Write the
  // message into it, then call queue().
  std::string& next_message();
  // Queues the message just written to the flow's destination address (on `port`) and/or the
  // collector; sends the batch when it is full.
  void queue(const FlowID* to_peer, bool to_collector);
  // Sends what is pending.
  void flush();

 private:
  struct Pending {
    std::uint32_t msg;  // index into messages_
    bool collector;
    net::SocketAddress to;
  };
  void resolve_collector();
  void send_family(int family);

  std::uint16_t port_;
  std::optional<net::Endpoint> collector_ep_;
  std::optional<net::SocketAddress> collector_;
  std::chrono::steady_clock::time_point last_resolve_{};
  SendCounters counters_;
  std::shared_ptr<spdlog::logger> log_;
  LogLimiter limiter_;
  UniqueFd fd4_, fd6_;

  std::vector<std::string> messages_;  // messages_[0, used_) are this batch's
  std::size_t used_ = 0;
  std::vector<Pending> pending_;  // up to two per message
  std::vector<mmsghdr> hdrs_;
  std::vector<iovec> iovs_;
  std::vector<const Pending*> which_;
};

}  // namespace flowd::udp_firefly
