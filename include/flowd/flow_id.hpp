// SPDX-License-Identifier: Apache-2.0
// FlowID: the one value type that travels from plugins over the bus to backends.
// Plain data, cheap to copy (no heap allocation but the shared, immutable relayed JSON), safe to
// hand between threads by value.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace flowd {

enum class FlowState : std::uint8_t { kStart, kEnd, kOngoing };
enum class Protocol : std::uint8_t { kTcp, kUdp };

// Where a flow was learnt, which decides what flowd may do with it (spec: "Flows observed on the
// network"). kLocal: this host's own connections (np_api, netlink, netstat, iperf) — fireflies go
// to the flow's peer, the marker marks it. kRemote: another host's report (firefly) — relayed to
// the collector only. kObserved: traffic a router or probe saw (netflow) — its addresses came from
// an export anybody can spoof, so nothing is ever sent to them and nothing is marked.
enum class FlowOrigin : std::uint8_t { kLocal, kRemote, kObserved };
inline constexpr std::size_t kFlowOrigins = 3;

std::string_view to_string(FlowState s);
std::string_view to_string(Protocol p);
std::string_view to_string(FlowOrigin o);
// Case-insensitive, as flowd-go; nullopt for anything else.
std::optional<FlowState> parse_flow_state(std::string_view s);
std::optional<Protocol> parse_protocol(std::string_view s);

// An IPv4 or IPv6 address in network byte order. IPv4 uses the first 4 bytes.
struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6; 0 = unset
  std::array<std::uint8_t, 16> bytes{};

  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t host_order);
  std::string to_string() const;
  bool is_v4() const;
  bool is_v6() const;
  // The unspecified address: 0.0.0.0, ::, or ::ffff:0.0.0.0 (0.0.0.0 mapped into IPv6, which a
  // dual-stack socket takes for 0.0.0.0); an unset address (all zero) too. "Any address" to a
  // socket, never a connection's end: a datagram sent to it reaches this host. The one test for
  // it: what the pipe and the api refuse is what the flow journal refuses at a restart (try15i C).
  bool is_unspecified() const;
  bool operator==(const IpAddress&) const = default;
};

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

// Experiment ids are 9 bits and activity ids 6 bits in the flow label (spec §4).
inline constexpr unsigned kMaxExperiment = 511;
inline constexpr unsigned kMaxActivity = 63;

struct FlowID {
  FlowState state = FlowState::kStart;
  Protocol protocol = Protocol::kTcp;
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint16_t experiment = 0;
  std::uint16_t activity = 0;
  std::optional<TimePoint> start_time;
  std::optional<TimePoint> end_time;
  // Name of the plugin that produced the event; points into the static component table. Set on the
  // way into each backend queue by the plugin's publisher handle: plugins leave it alone.
  const char* plugin = "";
  // Every plugin sets this where it makes its FlowIDs. The default is the most restrictive origin
  // on purpose: a FlowID that forgot where it came from is never sent to its addresses, never sent
  // to the collector (unless forward_observed) and never marked. Forgetting kLocal fails safe.
  FlowOrigin origin = FlowOrigin::kObserved;
  // Set by the firefly plugin: the received firefly's JSON as it came, so that udp_firefly relays
  // the sender's fields (application, usage, netlink, ...) unchanged instead of rebuilding them.
  std::shared_ptr<const std::string> firefly_json;
  // The kernel's socket cookie of a local TCP connection (sock_diag's idiag_cookie, the kernel
  // plugin's records), set by the connection plugins where the kernel gives one; 0: unknown. It
  // tells a socket from a later one on the same 4-tuple: the flow journal keeps it, so that a
  // restart does not take a new connection on a reused 4-tuple for the one it journaled.
  std::uint64_t socket_cookie = 0;

  int family() const { return dst.family; }
};

// The identity of a flow, independent of its state: what backends key their per-flow state on.
struct FlowKey {
  Protocol protocol = Protocol::kTcp;
  IpAddress src;
  IpAddress dst;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;

  static FlowKey of(const FlowID& f) { return {f.protocol, f.src, f.dst, f.src_port, f.dst_port}; }
  bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
  std::size_t operator()(const FlowKey& k) const noexcept;
};

}  // namespace flowd
