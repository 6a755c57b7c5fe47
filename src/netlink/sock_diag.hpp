// SPDX-License-Identifier: Apache-2.0
// TCP sockets of this network namespace through sock_diag (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY
// over libmnl): one dump of IPv4 and IPv6 per call, optionally with tcp_info, congestion control
// and memory counters. Shared by the netlink/iperf plugins, the per-flow Prometheus metrics and
// firefly enrichment. One SockDiag per thread: it owns a netlink socket and a receive buffer, no
// locking.
#pragma once

#include <linux/tcp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "flowd/flow_id.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace flowd::netlink {

// Kernel TCP states (include/net/tcp_states.h), the numbers /proc/net/tcp prints too.
enum TcpState : std::uint8_t {
  kTcpEstablished = 1,
  kTcpSynSent,
  kTcpSynRecv,
  kTcpFinWait1,
  kTcpFinWait2,
  kTcpTimeWait,
  kTcpClose,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpListen,
  kTcpClosing,
  kTcpNewSynRecv,
};
const char* tcp_state_name(std::uint8_t state);
// The states in which the original scanners end a flow (the connection is being torn down).
bool is_closing_state(std::uint8_t state);
// Whether a socket a dump lists (its state and inode) is a connection that can still carry data:
// ESTABLISHED, or a state between it and CLOSE (FIN-WAIT-1 sends what is queued and receives,
// FIN-WAIT-2 receives, CLOSE-WAIT sends, CLOSING and LAST-ACK retransmit). Not a FIN-WAIT-2 socket
// without an inode: orphaned (closed by its process: it answers data with a RST), or a TIME-WAIT
// socket, which the kernel lists with its substate FIN-WAIT-2 (inet_twsk_diag_fill()).
bool carries_data(std::uint8_t state, std::uint32_t inode);

// One socket: the identity and what the kernel says about it without extensions.
struct SockEntry {
  IpAddress local, remote;  // IPv4-mapped IPv6 addresses are reported as IPv4
  std::uint16_t local_port = 0, remote_port = 0;
  std::uint8_t state = 0;
  std::uint8_t retrans = 0;  // idiag_retrans
  std::uint32_t inode = 0;   // 0 while the socket is not yet accepted
  std::uint64_t cookie = 0;  // the kernel's socket cookie (idiag_cookie): one socket, never reused
  std::uint32_t uid = 0;
  std::uint32_t ifindex = 0;
};

// Extensions (only for full sockets: TIME_WAIT and request sockets have none).
struct TcpDetails {
  tcp_info info{};                // zero beyond the length the kernel sent
  std::uint32_t info_len = 0;     // 0: no INET_DIAG_INFO
  char congestion[16] = {};       // INET_DIAG_CONG, NUL-terminated
  std::uint32_t meminfo[4] = {};  // INET_DIAG_MEMINFO: rmem, wmem, fmem, tmem
  std::uint32_t skmem[9] = {};    // INET_DIAG_SKMEMINFO (SK_MEMINFO_*), as `ss -m` shows
  bool has_meminfo = false, has_skmem = false;
};

struct DumpRequest {
  std::uint32_t states = ~0u;  // bit (1 << TcpState)
  bool details = false;        // ask for INFO, CONG, MEMINFO, SKMEMINFO
  bool ipv4 = true, ipv6 = true;
};

// Called once per socket; `details` is null without DumpRequest::details or for sockets without
// them.
using SockVisitor = std::function<void(const SockEntry&, const TcpDetails* details)>;

// Parses one SOCK_DIAG_BY_FAMILY answer message (header included, `len` bytes available).
// False (and `error` set) when it is not a well-formed inet_diag_msg.
bool parse_diag_message(const nlmsghdr* nlh, std::size_t len, SockEntry& entry, TcpDetails* details,
                        std::string& error);

class SockDiag {
 public:
  SockDiag();  // throws std::system_error when the netlink socket cannot be opened
  ~SockDiag();
  SockDiag(const SockDiag&) = delete;
  SockDiag& operator=(const SockDiag&) = delete;

  // One pass over every TCP socket of the namespace. False and `error` set on a netlink failure
  // (the sockets visited so far were visited).
  bool dump(const DumpRequest& req, const SockVisitor& visit, std::string& error);
  // The one socket with this 4-tuple (local end first), with details. False when there is none,
  // or when the kernel could not be asked: lookup_failed() tells which.
  bool lookup(const IpAddress& local, std::uint16_t local_port, const IpAddress& remote,
              std::uint16_t remote_port, SockEntry& entry, TcpDetails& details);
  // Whether the last lookup() that returned false did so because netlink failed (a send or
  // receive error, an error other than ENOENT, an answer it could not parse), not because the
  // kernel has no such socket.
  bool lookup_failed() const { return lookup_failed_; }
  // Sockets visited by the last dump and messages that could not be parsed (skipped).
  std::size_t last_count() const { return count_; }
  std::size_t malformed() const { return malformed_; }

 private:
  bool lookup_family(int family, const IpAddress& local, std::uint16_t local_port,
                     const IpAddress& remote, std::uint16_t remote_port, SockEntry& entry,
                     TcpDetails& details);
  bool dump_family(int family, const DumpRequest& req, const SockVisitor& visit,
                   std::string& error);
  mnl_socket* nl_ = nullptr;
  unsigned port_id_ = 0;
  unsigned seq_ = 0;
  std::vector<char> buf_;
  std::size_t count_ = 0, malformed_ = 0;
  bool lookup_failed_ = false;
};

// The value in `flows` (a FlowTable keyed by FlowKey) for the TCP socket `e`, looked up in the
// socket's own direction (local -> remote) and then reversed, because a plugin may have reported
// the flow from either end (np_api names src and dst as its caller did); nullptr when neither is
// there.
template <class FlowMap>
auto* find_socket_flow(FlowMap& flows, const SockEntry& e) {
  auto* v = flows.find(FlowKey{Protocol::kTcp, e.local, e.remote, e.local_port, e.remote_port});
  if (!v) v = flows.find(FlowKey{Protocol::kTcp, e.remote, e.local, e.remote_port, e.local_port});
  return v;
}

}  // namespace flowd::netlink
