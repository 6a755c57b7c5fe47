// SPDX-License-Identifier: Apache-2.0
// A small live IPFIX exporter for the privileged tests: it sees every IPv6 TCP/UDP packet on one
// interface of a namespace, both directions (AF_PACKET, after tc egress, so a marker's label is
// what it reads) and exports, every 250 ms, one record per (5-tuple, flow label) with the octets
// and packets seen since the last export. The label is each packet's own, as nProbe and Cisco FNF
// with `match ipv6 flow-label` export it; Debian's softflowd and pmacctd's nfprobe cannot.
#pragma once

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "ipfix_export.hpp"
#include "netns_scope.hpp"

namespace flowd::test {

class LabelExporter {
 public:
  // Starts capturing on `iface` in namespace `ns` and exporting to 127.0.0.1:`port` there.
  LabelExporter(const std::string& ns, const std::string& iface, int port) {
    NetnsScope in(ns);
    // ETH_P_ALL: a socket bound to one protocol sees only received packets, never sent ones.
    packets_ = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
    udp_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = static_cast<int>(::if_nametoindex(iface.c_str()));
    sockaddr_storage to{};
    const socklen_t to_len = make_sockaddr("127.0.0.1", port, to);
    if (packets_ < 0 || udp_ < 0 || ll.sll_ifindex == 0 ||
        ::bind(packets_, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0 ||
        ::connect(udp_, reinterpret_cast<sockaddr*>(&to), to_len) != 0)
      throw std::runtime_error("label exporter on " + ns + "/" + iface + ": " +
                               std::strerror(errno));
    // veth hands over GSO super-packets of up to 64 KB, and AF_PACKET charges each one whole
    // against the receive buffer although only 2 KB are copied: without room, a 128 KB transfer
    // overflows it in a few packets.
    const int rcvbuf = 64 << 20;
    ::setsockopt(packets_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    thread_ = std::jthread([this](std::stop_token st) { run(st); });
  }
  ~LabelExporter() { stop(); }
  LabelExporter(const LabelExporter&) = delete;
  LabelExporter& operator=(const LabelExporter&) = delete;

  // Exports what is left and stops; returns the number of records exported in all.
  std::size_t stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
    if (packets_ >= 0) ::close(packets_);
    if (udp_ >= 0) ::close(udp_);
    packets_ = udp_ = -1;
    return exported_;
  }

 private:
  using Key = std::tuple<std::string, std::string, int, int, int, std::uint32_t>;
  struct Count {
    std::uint64_t octets = 0, packets = 0;
  };

  void run(const std::stop_token& st) {
    auto next_export = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
    unsigned char buf[2048];
    while (!st.stop_requested()) {
      pollfd p{packets_, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) drain(buf, sizeof buf);
      if (std::chrono::steady_clock::now() >= next_export) {
        flush();
        next_export += std::chrono::milliseconds(250);
      }
    }
    drain(buf, sizeof buf);  // packets still queued belong to the last interval
    flush();
  }

  void drain(unsigned char* buf, std::size_t size) {
    // MSG_TRUNC: the packet's real length, of which only `size` bytes are copied.
    sockaddr_ll from{};
    socklen_t from_len = sizeof from;
    for (ssize_t n; (n = ::recvfrom(packets_, buf, size, MSG_DONTWAIT | MSG_TRUNC,
                                    reinterpret_cast<sockaddr*>(&from), &from_len)) > 0;
         from_len = sizeof from)
      if (from.sll_protocol == htons(ETH_P_IPV6))
        count(buf, std::min(size, static_cast<std::size_t>(n)), static_cast<std::size_t>(n));
  }

  // `n` bytes of a packet of `length` bytes (one GSO super-packet counts as one packet).
  void count(const unsigned char* p, std::size_t n, std::size_t length) {
    // IPv6 header, then TCP or UDP directly (the tests' traffic has no extension headers).
    if (n < 44 || (p[0] >> 4) != 6 || (p[6] != 6 && p[6] != 17)) return;
    const std::uint32_t label =
        (std::uint32_t{p[1]} & 0x0f) << 16 | std::uint32_t{p[2]} << 8 | p[3];
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, p + 8, src, sizeof src);
    inet_ntop(AF_INET6, p + 24, dst, sizeof dst);
    const int sport = p[40] << 8 | p[41], dport = p[42] << 8 | p[43];
    Count& c = pending_[{src, dst, sport, dport, p[6], label}];
    c.octets += length;  // the IP packet, as octetDeltaCount counts it
    ++c.packets;
  }

  void flush() {
    std::vector<ExportedFlow> flows;
    auto send = [&] {
      if (flows.empty()) return;
      const std::string msg = ipfix_export(flows, sequence_);
      sequence_ += static_cast<std::uint32_t>(flows.size());
      exported_ += flows.size();
      ::send(udp_, msg.data(), msg.size(), 0);
      flows.clear();
    };
    for (const auto& [k, c] : pending_) {
      const auto& [src, dst, sport, dport, proto, label] = k;
      flows.push_back({src, dst, static_cast<std::uint16_t>(sport),
                       static_cast<std::uint16_t>(dport), static_cast<std::uint8_t>(proto), label,
                       c.octets, c.packets});
      if (flows.size() == 20) send();  // 20 IPv6 records: ~1.2 KB, one unfragmented datagram
    }
    send();
    pending_.clear();
  }

  int packets_ = -1, udp_ = -1;
  std::map<Key, Count> pending_;
  std::uint32_t sequence_ = 0;
  std::size_t exported_ = 0;
  std::jthread thread_;
};

}  // namespace flowd::test
