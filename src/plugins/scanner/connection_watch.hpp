// SPDX-License-Identifier: Apache-2.0
// The TCP flows a transfer tool reported through np_api or the api (an explicit report), checked
// against the kernel's sockets (issue 15, E6). A tool killed between its `start` and its `end`, or
// whose `end` was lost, left its flow active for ever: the marker kept labelling the 5-tuple (a
// later connection reusing the ports got the dead transfer's tag), `flowd_active_flows` kept it and
// no `end` firefly went out. Every `check_interval` the plugin lists this network namespace's TCP
// sockets once (one sock_diag dump, however many flows it follows) and ends, through its own
// publisher (so the arbiter, the marker and udp_firefly see an ordinary `end`, stamped with the
// check's time), each flow whose connection is not open:
//
//   - open: a socket that can still carry data (netlink::carries_data: ESTABLISHED, FIN-WAIT-1,
//     CLOSE-WAIT, CLOSING, LAST-ACK, or FIN-WAIT-2 still held by its process), the one the flow
//     names in either direction — the tool names the ends in its own order;
//   - a flow a check found open and a later check does not: ended (`connection_closed`);
//   - a flow no check has found open yet: a tool may announce a flow before its connect() (the
//     README allows it), so it is ended only when two consecutive checks did not find it (it was
//     announced at least one interval before), `connection_not_found`, and only if one of its
//     addresses is this namespace's (an address of an interface, or 127.0.0.0/8): a tool in a
//     container with its own network namespace reports connections flowd cannot list, which are
//     left alone.
// UDP flows have no connection state to check: they are left to their `end`.
//
// A connection is keyed as the arbiter and the marker key it (the peer, the ports; an IPv4-mapped
// address as its IPv4 one), so the tool's `end` naming another local address still ends it here.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/flow_table.hpp"
#include "common/net/local_addresses.hpp"
#include "common/unique_fd.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/log.hpp"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus
namespace spdlog {
class logger;
}

namespace flowd {
class DaemonStatus;
class Publisher;
class ReloadShelf;
namespace netlink {
class SockDiag;
}
}  // namespace flowd

namespace flowd::scanner {

// Why a reported flow was ended by the check (flowd_explicit_flows_expired_total{reason}).
enum class Expiry : std::uint8_t {
  kConnectionClosed,    // a check found its connection open, a later one did not
  kConnectionNotFound,  // never found open, by two consecutive checks
};
inline constexpr std::size_t kExpiryCount = 2;
std::string_view to_string(Expiry e);

// The bookkeeping, without I/O (unit-tested): the reported TCP flows and what the checks found.
// Not thread-safe.
class ReportedConnections {
 public:
  // At most this many flows are followed (the oldest forgotten: never checked, as before).
  static constexpr std::size_t kCapacity = 65536;
  explicit ReportedConnections(std::size_t capacity = kCapacity) : table_(capacity) {}

  // Follows the local TCP starts of `published`; their ends forget them.
  void note(std::span<const FlowID> published);
  // Forgets every flow but those of `starts` (a predecessor's table taken on by a reload: only
  // what the daemon still lists as reported is followed).
  void keep_only(std::span<const FlowID> starts);
  // One check: begin_check(), saw_open() for every socket that can carry data, finish_check().
  void begin_check() { ++check_; }
  void saw_open(const IpAddress& local, std::uint16_t local_port, const IpAddress& remote,
                std::uint16_t remote_port);
  struct Expired {
    FlowID end;  // the flow's start as published, made an end at `now`
    Expiry reason;
  };
  // Appends the flows this check ends (and forgets them). `is_local` says whether an address is
  // this namespace's; asked only of flows never found open.
  void finish_check(TimePoint now, const std::function<bool(const IpAddress&)>& is_local,
                    std::vector<Expired>& out);
  std::size_t size() const { return table_.size(); }
  std::uint64_t overflow() const { return table_.overflow(); }
  // The key of the arbiter (core/local_flow_arbiter.hpp): the peer, the ports, the protocol.
  static FlowKey key_of(const FlowID& f);

 private:
  struct Entry {
    FlowID start;
    std::uint64_t found_at = 0;  // the last check that found it open; 0: none
    std::uint8_t misses = 0;     // consecutive checks that did not
  };
  FlowTable<FlowKey, Entry, FlowKeyHash> table_;
  std::uint64_t check_ = 0;
};

// The plugin's side: the timer, the dump, the counter and the log. fd() is a timerfd the plugin's
// poll loop waits on; on_timer() runs one check. publish() is how the plugin hands its flows to the
// bus: the flows are followed in the same step, under one lock with the check, so the check's `end`
// can never pass a `start` of the same connection the tool published meanwhile (the api publishes
// from its HTTP threads).
class ConnectionWatch {
 public:
  // `plugin`: the plugin's name (a static string), for the counter's label and the log; `interval`
  // 0: no check (publish() only publishes). Throws std::system_error when the timer cannot be made.
  ConnectionWatch(const char* plugin, std::chrono::seconds interval, prometheus::Registry& metrics,
                  std::shared_ptr<spdlog::logger> log);
  ~ConnectionWatch();
  ConnectionWatch(const ConnectionWatch&) = delete;
  ConnectionWatch& operator=(const ConnectionWatch&) = delete;

  int fd() const { return timer_.get(); }  // -1 when off
  // Publishes the plugin's flows (this host's end first: a flow that names the peer first is
  // turned) and follows their TCP starts.
  void publish(Publisher& out, std::span<const FlowID> flows);
  // The plugin stops: what the checks found of its flows is left on `shelf` for the instance a
  // reload starts in its place (destroyed with the shelf's leftovers when none comes).
  void shelve(ReloadShelf* shelf);
  // The plugin starts (start(), before the runtime clears the shelf): takes what its
  // predecessor's checks found, for inherit().
  void take_shelved(ReloadShelf* shelf);
  // A reload restarted the plugin: follows the TCP flows its predecessor reported and did not end
  // (DaemonStatus::reported_flows), with what its checks found of them (take_shelved): one found
  // open ends as connection_closed at the first check that misses it, as it would have without
  // the reload (try15g 7); without that, as not yet found open. Returns how many.
  std::size_t inherit(DaemonStatus* status);
  // fd() is readable: one check, its ends published to `out`.
  void on_timer(Publisher& out);

 private:
  void check(Publisher& out);
  // Lists the sockets into flows_ (begin/saw_open); false when netlink failed (logged).
  bool list_sockets();

  const char* plugin_;
  std::chrono::seconds interval_;
  std::shared_ptr<spdlog::logger> log_;
  UniqueFd timer_;
  std::mutex mu_;  // flows_, diag_, local_, turned_, and publish() against a check's ends
  // This namespace's addresses, read again when older than a second (publish() turns a line that
  // names the peer first).
  std::optional<net::LocalAddresses> local_;
  std::chrono::steady_clock::time_point local_read_;
  std::vector<FlowID> turned_;
  ReportedConnections flows_;
  std::optional<ReportedConnections> predecessor_;  // take_shelved() to inherit()
  std::unique_ptr<netlink::SockDiag> diag_;         // opened at the first check with flows to check
  std::array<prometheus::Counter*, kExpiryCount> expired_{};
  prometheus::Counter* checks_ = nullptr;
  std::vector<ReportedConnections::Expired> expired_now_;
  std::vector<FlowID> ends_;
  LogLimiter limiter_{10, std::chrono::seconds(10)};
  LogLimiter error_limiter_{1, std::chrono::seconds(60)};
};

}  // namespace flowd::scanner
