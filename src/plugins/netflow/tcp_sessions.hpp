// SPDX-License-Identifier: Apache-2.0
// Worker 0's IPFIX-over-TCP listeners and sessions (RFC 7011 §10.4), bounded: a session cap, a cap
// per exporter address, an idle timeout, a reserve of descriptors for the rest of flowd, and a
// back-off of the listeners when accept() runs out of descriptors or memory (issue 13: 1,100 idle
// connections under a 1,024-descriptor limit made the accept loop spin and /metrics go silent).
//
// A connection over a cap is accepted and closed at once rather than an older session closed to
// make room: the sessions that hold the cap are exporters already sending, and a peer that only
// opens connections could otherwise evict them at will. Idle sessions free their slots through the
// idle timeout, and an exporter retries (RFC 7011 §10.4.1).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "collector/decoder.hpp"
#include "common/unique_fd.hpp"
#include "plugins/netflow/tcp_session.hpp"
#include "plugins/netflow/worker_loop.hpp"

namespace flowd::netflow {

struct TcpSessionLimits {
  std::size_t max_sessions = 256;          // the max_tcp_sessions key
  std::size_t max_per_exporter = 16;       // max_tcp_sessions_per_exporter: per peer address
  std::chrono::seconds idle_timeout{300};  // tcp_idle_timeout; 0: never
  // A connection whose descriptor would leave fewer than this many below RLIMIT_NOFILE is closed at
  // once (refused, "emfile"): scrapes, reloads and the other plugins need descriptors too.
  int descriptor_reserve = 16;
};

// Why a connection was not kept; metric label values (a closed set).
enum class TcpRefusal : std::uint8_t {
  kMaxSessions,  // max_tcp_sessions sessions open
  kPerExporter,  // max_tcp_sessions_per_exporter sessions open from the peer's address
  kEmfile,       // out of descriptors: accept() failed with EMFILE/ENFILE, or the reserve was hit
  kEnomem,       // accept() failed with ENOBUFS/ENOMEM
};
inline constexpr std::size_t kTcpRefusalCount = 4;
std::string_view to_string(TcpRefusal r);

// Why a session ended; metric label values (a closed set). Sessions closed by a stop or a reload
// are not counted.
enum class TcpClosure : std::uint8_t {
  kPeer,       // the exporter closed its end
  kError,      // recv() failed (reset, timeout)
  kOutOfSync,  // the stream could not be framed (RFC 7011 §10.4)
  kIdle,       // nothing received for tcp_idle_timeout
};
inline constexpr std::size_t kTcpClosureCount = 4;
std::string_view to_string(TcpClosure c);

class TcpSessions {
 public:
  TcpSessions(TcpSessionLimits limits, collector::DecoderLimits decoder_limits)
      : limits_(limits), decoder_limits_(decoder_limits) {}

  // Takes a listening socket (open_tcp_listener). The first one also creates the back-off timer.
  // Throws std::system_error when timerfd_create fails.
  void add_listener(UniqueFd fd);
  bool empty() const { return listeners_.empty(); }
  // Watches the listeners and the back-off timer in `loop` (the loop worker 0 runs).
  void watch(WorkerLoop& loop);
  // Closes listeners and sessions (a stop, a failed worker); nothing is counted.
  void clear();

  bool is_listener(int fd) const;
  bool is_backoff_timer(int fd) const { return timer_ && fd == timer_.get(); }

  struct Accepted {
    enum class Outcome : std::uint8_t {
      kNone,        // nothing was waiting, or the listeners are resting
      kSession,     // a new session: `session`
      kNotAllowed,  // closed: `allowed` said no to `peer`
      kRefused,     // closed at once: `refusal`
      kBackoff,     // accept() failed (`error`, `refusal`): the listeners rest for `backoff`
    };
    Outcome outcome = Outcome::kNone;
    TcpSession* session = nullptr;
    std::optional<collector::Exporter> peer;
    TcpRefusal refusal = TcpRefusal::kMaxSessions;
    int error = 0;
    std::chrono::milliseconds backoff{0};
  };
  // Accepts one connection waiting on `listener` and applies, in order, `allowed(address)`, the
  // descriptor reserve, max_sessions and max_per_exporter. When accept() fails with EMFILE, ENFILE,
  // ENOBUFS or ENOMEM, every listener leaves `loop` and the back-off timer is armed: 100 ms,
  // doubled on each failure in a row up to 1 s, back to 100 ms after an accept that works. The
  // connections wait in the kernel's backlog meanwhile; nothing polls.
  Accepted accept(int listener, WorkerLoop& loop,
                  const std::function<bool(const IpAddress&)>& allowed);
  // The back-off timer fired: the listeners rejoin `loop`.
  void resume(WorkerLoop& loop);

  // The session on descriptor `fd`, or null.
  TcpSession* find(int fd);
  // Ends the session on `fd`: leaves `loop`, is closed, frees its exporter's slot.
  void close(int fd, WorkerLoop& loop);
  // Closes sessions that received nothing for idle_timeout at `now`; returns their peers.
  std::vector<collector::Exporter> close_idle(std::chrono::steady_clock::time_point now,
                                              WorkerLoop& loop);

  std::size_t size() const { return sessions_.size(); }
  const std::map<int, TcpSession>& sessions() const { return sessions_; }
  std::map<int, TcpSession>& sessions() { return sessions_; }
  const TcpSessionLimits& limits() const { return limits_; }
  bool resting() const { return resting_; }

 private:
  using AddressKey = std::pair<int, std::array<std::uint8_t, 16>>;
  static AddressKey key_of(const IpAddress& a) { return {a.family, a.bytes}; }
  // True when descriptor `fd` leaves fewer than descriptor_reserve below the soft RLIMIT_NOFILE.
  // Linux hands out the lowest free descriptor, so every one below `fd` is in use.
  bool in_reserve(int fd) const;

  TcpSessionLimits limits_;
  collector::DecoderLimits decoder_limits_;
  std::map<int, UniqueFd> listeners_;
  std::map<int, TcpSession> sessions_;              // by descriptor
  std::map<AddressKey, std::size_t> per_exporter_;  // open sessions per peer address
  UniqueFd timer_;                                  // the back-off timer (timerfd, one-shot)
  bool resting_ = false;
  std::chrono::milliseconds next_backoff_{kFirstBackoff};

  static constexpr std::chrono::milliseconds kFirstBackoff{100};
  static constexpr std::chrono::milliseconds kMaxBackoff{1000};
};

}  // namespace flowd::netflow
