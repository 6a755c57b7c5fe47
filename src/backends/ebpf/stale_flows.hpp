// SPDX-License-Identifier: Apache-2.0
// The flows a pinned map kept from a flowd that is no longer running, checked against the sockets
// of this network namespace (issue 15): that flowd may have been killed (kill -9) while connections
// were open, and they closed while no flowd watched, so their `end` never came. A TCP entry with no
// connection left marks whatever new connection reuses its ports (the SYN included) with the old
// tag, and the map is not what `flowd flows` reports.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "flowd/flow_id.hpp"
#include "flowd_marker.h"

namespace flowd::ebpf {

// One entry kept: its map key and label, and the flow it marks as `flowd flows` lists it (the
// source address from the TCP socket found for it; unspecified (::) for UDP, which the key lacks).
struct KeptEntry {
  flowd_flow_key key;
  std::uint32_t label = 0;
  FlowKey flow;
};

struct StaleFlows {
  std::uint64_t tcp_kept = 0;       // TCP entries with a live connection (netlink::carries_data)
  std::uint64_t tcp_elsewhere = 0;  // TCP entries of a followed flow neither of whose ends is here
  std::uint64_t tcp_dropped = 0;    // TCP entries without one: deleted from the map
  std::uint64_t udp_kept = 0;       // UDP entries: no connection state to check, kept
  std::vector<KeptEntry> kept;      // every entry kept, TCP and UDP
  std::string error;                // the sockets could not be listed: nothing was deleted
};

// Deletes from the marker's flow map (flowd_marker.h keys) every TCP entry for which this network
// namespace has no TCP socket whose egress packets it matches (remote address, local port, remote
// port) that can still carry data (netlink::carries_data, as the connection plugins' tracker: not
// a TIME-WAIT or orphaned FIN-WAIT-2, which sock_diag lists as FIN-WAIT-2 without an inode, nor a
// connection not yet established); one sock_diag dump (netlink/sock_diag).
// UDP entries are kept: an unconnected UDP socket has no peer, so whether a UDP flow still runs
// cannot be told; they go with their `end` or the map's LRU eviction.
// So is a TCP entry of a flow in `followed` (the daemon's flows at the takeover, restored by the
// flow journal, by their map key as key_bytes() makes it) neither of whose addresses is this
// namespace's (net::LocalAddresses::either_local): a tool in a container of its own reported it,
// its socket cannot be listed here, and the journal and the connection check take it for open
// (try15h D1). Its plugin follows it, so it is not in `kept` (no socket will ever end it there).
StaleFlows drop_tcp_flows_without_socket(int map_fd,
                                         const std::map<std::string, FlowKey>& followed = {});

// The map keys (as bytes) of this namespace's live TCP connections (as above), each with its local
// address; false and `error` when the sockets could not be listed.
bool live_tcp_keys(std::map<std::string, IpAddress>& keys, std::string& error);

// The bytes of a key, for live_tcp_keys' map.
std::string key_bytes(const flowd_flow_key& k);

}  // namespace flowd::ebpf
