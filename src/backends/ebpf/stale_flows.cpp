// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/stale_flows.hpp"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "common/net/local_addresses.hpp"
#include "netlink/sock_diag.hpp"

namespace flowd::ebpf {

std::string key_bytes(const flowd_flow_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof k);
}

bool live_tcp_keys(std::map<std::string, IpAddress>& keys, std::string& error) {
  // The keys the live connections' egress packets have (flowd_marker.bpf.c builds the same). Live
  // as the connection plugins' tracker says (netlink::carries_data): a TIME-WAIT socket is listed
  // as FIN-WAIT-2 with no inode, and an orphaned FIN-WAIT-2 has none either; neither sends data.
  try {
    netlink::SockDiag diag;
    netlink::DumpRequest req;
    req.states = (1u << netlink::kTcpEstablished) | (1u << netlink::kTcpFinWait1) |
                 (1u << netlink::kTcpFinWait2) | (1u << netlink::kTcpCloseWait) |
                 (1u << netlink::kTcpClosing) | (1u << netlink::kTcpLastAck);
    req.ipv4 = false;
    return diag.dump(
        req,
        [&](const netlink::SockEntry& e, const netlink::TcpDetails*) {
          if (!netlink::carries_data(e.state, e.inode)) return;
          if (!e.remote.is_v6()) return;  // IPv4-mapped: reported as IPv4, never labelled
          flowd_flow_key k;
          std::memset(&k, 0, sizeof k);
          std::memcpy(k.daddr, e.remote.bytes.data(), 16);
          k.sport = htons(e.local_port);
          k.dport = htons(e.remote_port);
          k.proto = IPPROTO_TCP;
          keys.emplace(key_bytes(k), e.local);
        },
        error);
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

StaleFlows drop_tcp_flows_without_socket(int map_fd,
                                         const std::map<std::string, FlowKey>& followed) {
  StaleFlows out;
  std::map<std::string, IpAddress> live;
  if (!live_tcp_keys(live, out.error)) {
    if (out.error.empty()) out.error = "the dump failed";
    return out;
  }
  // The map walked first, deleted after: deleting while walking restarts the walk.
  std::vector<flowd_flow_key> stale;
  std::optional<net::LocalAddresses> local;  // read at the first entry that needs it
  flowd_flow_key key{}, next{};
  const void* prev = nullptr;
  for (std::uint64_t seen = 0; seen < 20'000'000 && bpf_map_get_next_key(map_fd, prev, &next) == 0;
       ++seen) {
    key = next;
    prev = &key;
    KeptEntry kept{key, 0, {}};
    kept.flow.dst.family = AF_INET6;
    std::memcpy(kept.flow.dst.bytes.data(), key.daddr, 16);
    kept.flow.src_port = ntohs(key.sport);
    kept.flow.dst_port = ntohs(key.dport);
    if (key.proto != IPPROTO_TCP) {
      ++out.udp_kept;
      kept.flow.protocol = Protocol::kUdp;
      kept.flow.src = IpAddress{AF_INET6, {}};  // the key has no source address
    } else if (auto it = live.find(key_bytes(key)); it != live.end()) {
      ++out.tcp_kept;
      kept.flow.protocol = Protocol::kTcp;
      kept.flow.src = it->second;
    } else {
      const auto f = followed.find(key_bytes(key));
      if (f != followed.end()) {
        if (!local) local.emplace();
        if (!local->either_local(f->second.src, f->second.dst)) {
          ++out.tcp_elsewhere;
          continue;
        }
      }
      stale.push_back(key);
      continue;
    }
    if (bpf_map_lookup_elem(map_fd, &key, &kept.label) == 0) out.kept.push_back(kept);
  }
  for (const auto& k : stale)
    if (bpf_map_delete_elem(map_fd, &k) == 0) ++out.tcp_dropped;
  return out;
}

}  // namespace flowd::ebpf
