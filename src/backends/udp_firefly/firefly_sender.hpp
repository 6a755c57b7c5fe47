// SPDX-License-Identifier: Apache-2.0
// udp_firefly's sending side: the pending batch of fireflies (each to the flow's peer, every
// collector or both), one sendmmsg() per address family per batch, the collectors' addresses (from
// a CollectorResolver, looked up off this thread) and the sent/error accounting. The message
// buffers and the sendmmsg arrays are reused from batch to batch: no allocation per firefly once
// they have grown. Single-threaded: the udp_firefly backend's thread.
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

#include "backends/udp_firefly/collector_resolver.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/socket_address.hpp"
#include "common/unique_fd.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"

namespace prometheus {
class Counter;
}

namespace flowd::udp_firefly {

// flowd_fireflies_sent_total and flowd_firefly_send_errors_total, by destination (the collector
// series count the datagrams to every collector), and per collector
// (flowd_collector_fireflies_sent_total, flowd_collector_send_errors_total,
// flowd_collector_resolve_failures_total; one entry per configured collector, in order).
struct SendCounters {
  prometheus::Counter* sent_flow;
  prometheus::Counter* sent_collector;
  prometheus::Counter* errors_flow;
  prometheus::Counter* errors_collector;
  std::vector<prometheus::Counter*> sent_per_collector;
  std::vector<prometheus::Counter*> errors_per_collector;
  std::vector<prometheus::Counter*> resolve_failures;
};

class FireflySender {
 public:
  // Fireflies per batch: a full batch is sent at once.
  static constexpr std::size_t kBatch = 64;

  // port: the flow peers' firefly port; collectors: where copies go, each gets every one (none: no
  // copies), looked up again every `resolve_interval` and after send errors.
  FireflySender(std::uint16_t port, std::vector<net::Endpoint> collectors,
                std::chrono::milliseconds resolve_interval, SendCounters counters,
                std::shared_ptr<spdlog::logger> log);
  // The sockets (an IPv4 one is required: std::system_error; without IPv6 the IPv6 fireflies count
  // as send errors) and a first lookup of the collectors, on the calling thread.
  void open();
  // The collectors' lookup thread, from the backend's run() (`heartbeats` may be null), and its
  // end (joined; also at destruction).
  void start_resolver(HeartbeatBoard* heartbeats) {
    resolver_.start(heartbeats, "backend.udp_firefly resolver");
  }
  void stop_resolver() { resolver_.stop(); }

  // The buffer for the next firefly, empty (its capacity kept from earlier batches). Write the
  // message into it, then call queue().
  std::string& next_message();
  // Queues the message just written to the flow's destination address (on `port`) and/or every
  // collector; sends the batch when it is full.
  void queue(const FlowID* to_peer, bool to_collector);
  // Sends what is pending.
  void flush();

 private:
  static constexpr std::uint16_t kToFlow = 0xffff;
  struct Pending {
    std::uint32_t msg;        // index into messages_
    std::uint16_t collector;  // index into collectors_, or kToFlow
    net::SocketAddress to;
  };
  void count_error(const Pending& p);
  // Picks up the resolver's new addresses, if any, and recomputes shared_.
  void refresh_collectors();
  void send_family(int family);

  std::uint16_t port_;
  SendCounters counters_;
  CollectorResolver resolver_;
  std::uint64_t generation_ = 0;                               // of collectors_
  std::vector<std::optional<net::SocketAddress>> collectors_;  // as last picked up
  // collectors_[i] is the address of an earlier collector (two names of one host): not sent to,
  // that one gets the firefly. Recomputed when collectors_ changes.
  std::vector<bool> shared_;
  std::shared_ptr<spdlog::logger> log_;
  LogLimiter limiter_;
  UniqueFd fd4_, fd6_;

  std::vector<std::string> messages_;  // messages_[0, used_) are this batch's
  std::size_t used_ = 0;
  std::vector<Pending> pending_;  // up to 1 + collectors per message
  std::vector<mmsghdr> hdrs_;
  std::vector<iovec> iovs_;
  std::vector<const Pending*> which_;
};

}  // namespace flowd::udp_firefly
