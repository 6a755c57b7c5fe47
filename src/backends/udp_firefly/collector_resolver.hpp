// SPDX-License-Identifier: Apache-2.0
// The addresses of udp_firefly's collectors, looked up again every `interval` and soon after a send
// error, so that a DNS change reaches flowd without a restart (issue 14).
//
// Why a thread: getaddrinfo(3) blocks for as long as the resolver's timeouts (resolv.conf: 5 s per
// attempt, two attempts, per name server) and cannot be bounded or interrupted by its caller;
// getaddrinfo_a(3) runs the same lookup on glibc's own thread but can neither be cancelled once it
// runs nor be waited on beside an fd without a signal. So the lookups run on one small thread of
// the backend's own (started and joined by its run()), and the send loop only picks up the results:
// one atomic load per batch, a short lock when they changed. It never waits for DNS.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/net/endpoint.hpp"
#include "common/net/socket_address.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"

namespace prometheus {
class Counter;
}

namespace flowd::udp_firefly {

// Whether two collector addresses are one destination: same port, same address (an IPv4-mapped
// IPv6 address is the IPv4 address it maps).
bool same_destination(const net::SocketAddress& a, const net::SocketAddress& b);

class CollectorResolver {
 public:
  // A lookup asked for by request() waits at least this long after the previous lookup of the same
  // collector: a collector that refuses every datagram must not turn into a DNS query per batch.
  static constexpr std::chrono::seconds kMinGap{5};
  // A collector's failed lookups are logged at most once per this (limited_warn).
  static constexpr std::chrono::minutes kWarnInterval{10};

  // failures[i]: counts collector i's failed lookups (may be null).
  CollectorResolver(std::vector<net::Endpoint> collectors, std::chrono::milliseconds interval,
                    std::vector<prometheus::Counter*> failures,
                    std::shared_ptr<spdlog::logger> log);
  ~CollectorResolver() { stop(); }
  CollectorResolver(const CollectorResolver&) = delete;
  CollectorResolver& operator=(const CollectorResolver&) = delete;

  // Looks every collector up once on the calling thread (start(): the first fireflies have their
  // addresses). A name that does not resolve is logged and retried by the thread.
  void resolve_all_now();
  // Starts the lookup thread; `heartbeats` (may be null) gets its heartbeat as `who`.
  void start(HeartbeatBoard* heartbeats, const std::string& who);
  // Stops and joins the thread. A lookup in progress is not interruptible: this waits for it (at
  // most the resolver's own timeouts).
  void stop();

  // Asks for a lookup of collector `i` soon (a send error, no address yet); never blocks on DNS.
  void request(std::size_t i);
  // When the addresses changed since `generation`: copies them into `out` (one per collector,
  // nullopt while a name never resolved; an IPv4-mapped IPv6 address is given as IPv4), updates
  // `generation` and returns true. Otherwise one atomic load.
  bool changed(std::uint64_t& generation, std::vector<std::optional<net::SocketAddress>>& out);

 private:
  // The lookup of collector `i`, without holding mu_; the result is published under it.
  void lookup(std::size_t i);
  void loop(std::stop_token stop, std::shared_ptr<Heartbeat> hb);

  const std::vector<net::Endpoint> collectors_;
  const std::chrono::milliseconds interval_;
  const std::vector<prometheus::Counter*> failures_;
  std::shared_ptr<spdlog::logger> log_;
  // One per collector: a name that does not resolve warns once, then at most once per
  // kWarnInterval (with the count held back), however often it is looked up.
  std::vector<std::unique_ptr<LogLimiter>> warn_limiters_;

  std::mutex mu_;
  std::condition_variable_any wake_;
  std::vector<std::optional<net::SocketAddress>> addresses_;  // under mu_
  std::vector<bool> requested_;                               // under mu_
  std::vector<std::chrono::steady_clock::time_point> last_;   // under mu_: last lookup started
  bool poked_ = false;                                        // under mu_
  std::atomic<std::uint64_t> generation_{1};
  std::jthread thread_;
};

}  // namespace flowd::udp_firefly
