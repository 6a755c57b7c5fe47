// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/stale_flows.hpp"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cstring>
#include <set>
#include <string_view>
#include <vector>

#include "flowd_marker.h"
#include "netlink/sock_diag.hpp"

namespace flowd::ebpf {
namespace {

std::string key_bytes(const flowd_flow_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof k);
}

}  // namespace

StaleFlows drop_tcp_flows_without_socket(int map_fd) {
  StaleFlows out;
  // The keys the live connections' egress packets have (flowd_marker.bpf.c builds the same).
  std::set<std::string> live;
  try {
    netlink::SockDiag diag;
    netlink::DumpRequest req;
    req.states =
        ~((1u << netlink::kTcpListen) | (1u << netlink::kTcpTimeWait) | (1u << netlink::kTcpClose));
    req.ipv4 = false;
    std::string error;
    const bool ok = diag.dump(
        req,
        [&](const netlink::SockEntry& e, const netlink::TcpDetails*) {
          if (!e.remote.is_v6()) return;  // IPv4-mapped: reported as IPv4, never labelled
          flowd_flow_key k;
          std::memset(&k, 0, sizeof k);
          std::memcpy(k.daddr, e.remote.bytes.data(), 16);
          k.sport = htons(e.local_port);
          k.dport = htons(e.remote_port);
          k.proto = IPPROTO_TCP;
          live.insert(key_bytes(k));
        },
        error);
    if (!ok) {
      out.error = error;
      return out;
    }
  } catch (const std::exception& e) {
    out.error = e.what();
    return out;
  }
  // The map walked first, deleted after: deleting while walking restarts the walk.
  std::vector<flowd_flow_key> stale;
  flowd_flow_key key{}, next{};
  const void* prev = nullptr;
  for (std::uint64_t seen = 0; seen < 20'000'000 && bpf_map_get_next_key(map_fd, prev, &next) == 0;
       ++seen) {
    key = next;
    prev = &key;
    if (key.proto != IPPROTO_TCP) {
      ++out.udp_kept;
    } else if (live.count(key_bytes(key))) {
      ++out.tcp_kept;
    } else {
      stale.push_back(key);
    }
  }
  for (const auto& k : stale)
    if (bpf_map_delete_elem(map_fd, &k) == 0) ++out.tcp_dropped;
  return out;
}

}  // namespace flowd::ebpf
