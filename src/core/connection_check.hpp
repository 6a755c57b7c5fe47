// SPDX-License-Identifier: Apache-2.0
// Whether a TCP connection an inferred report (kernel, netlink, netstat, iperf) started is still
// open, asked by the LocalFlowArbiter before it hands a connection back to that report when the
// explicit one (np_api, api) ends. The inferring plugin may learn of a close late — it was being
// restarted by a reload, or it polls — and the tool's end then arrived first: a hand-back to a
// connection already closed made a phantom flow, started at the tool's end and ended at once by
// the plugin's late end (a firefly pair, a mark put and taken out; try15d D6).
//
// Asked of the kernel with one sock_diag lookup of the 4-tuple (src/netlink/), in this network
// namespace, which is the one the connection plugins follow. Open: a socket that can still carry
// data, as the connection plugins' tracker decides it (netlink::carries_data: ESTABLISHED, or
// between it and CLOSE, but not a FIN-WAIT-2 socket its process closed, where the kernel plugin
// ends the connection). Closed: no socket, one of those orphans, or TIME-WAIT. Unknown (another
// protocol, or netlink failed) counts as open: the hand-back is then made as before this check
// existed. Not thread-safe: the bus calls it under the mutex that serialises the arbiter.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/net/local_addresses.hpp"
#include "flowd/flow_id.hpp"

namespace flowd {

namespace netlink {
class SockDiag;
}

class OpenConnectionCheck {
 public:
  OpenConnectionCheck();
  ~OpenConnectionCheck();
  OpenConnectionCheck(const OpenConnectionCheck&) = delete;
  OpenConnectionCheck& operator=(const OpenConnectionCheck&) = delete;
  // False only when the kernel says the connection of `start` (either end may be this host's) is
  // closed; true when it is open or it cannot tell (no netlink socket, or neither end is an
  // address of this network namespace's interfaces). `cookie`, when given, gets the socket cookie
  // of the open socket found in the direction of `start` (start.src this host's end: the
  // connection plugins' order), 0 when there is none or the kernel gives none: the flow journal's
  // recovery tells a reused 4-tuple by it (try15g 3).
  bool operator()(const FlowID& start, std::uint64_t* cookie = nullptr);

 private:
  // Read again when older than a second: an interface may come after the check was made.
  std::optional<net::LocalAddresses> local_;
  std::chrono::steady_clock::time_point local_read_;
  std::unique_ptr<netlink::SockDiag> diag_;  // opened at the first check; null if it cannot be
  bool unavailable_ = false;                 // the netlink socket could not be opened
};

}  // namespace flowd
