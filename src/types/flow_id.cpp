// SPDX-License-Identifier: Apache-2.0
#include "flowd/flow_id.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace flowd {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view to_string(FlowState s) {
  switch (s) {
    case FlowState::kStart:
      return "start";
    case FlowState::kEnd:
      return "end";
    case FlowState::kOngoing:
      return "ongoing";
  }
  return "?";
}

std::string_view to_string(Protocol p) {
  return p == Protocol::kTcp ? "tcp" : "udp";
}

std::string_view to_string(FlowOrigin o) {
  switch (o) {
    case FlowOrigin::kLocal:
      return "local";
    case FlowOrigin::kRemote:
      return "remote";
    case FlowOrigin::kObserved:
      return "observed";
  }
  return "?";
}

std::optional<FlowState> parse_flow_state(std::string_view s) {
  if (iequals(s, "start")) return FlowState::kStart;
  if (iequals(s, "end")) return FlowState::kEnd;
  if (iequals(s, "ongoing")) return FlowState::kOngoing;
  return std::nullopt;
}

std::optional<Protocol> parse_protocol(std::string_view s) {
  if (iequals(s, "tcp")) return Protocol::kTcp;
  if (iequals(s, "udp")) return Protocol::kUdp;
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a terminated string; addresses are short, so anything longer is invalid.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress a;
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
    a.family = AF_INET;
  } else {
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
    a.family = AF_INET6;
  }
  return a;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress a;
  a.family = AF_INET;
  std::uint32_t n = htonl(host_order);
  std::memcpy(a.bytes.data(), &n, 4);
  return a;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  if (family != AF_INET && family != AF_INET6) return "";
  if (!inet_ntop(family, bytes.data(), buf, sizeof(buf))) return "";
  return buf;
}

bool IpAddress::is_v4() const {
  return family == AF_INET;
}
bool IpAddress::is_v6() const {
  return family == AF_INET6;
}

bool IpAddress::is_unspecified() const {
  const auto zero = [this](std::size_t from, std::size_t to) {
    return std::all_of(bytes.begin() + static_cast<std::ptrdiff_t>(from),
                       bytes.begin() + static_cast<std::ptrdiff_t>(to),
                       [](std::uint8_t b) { return b == 0; });
  };
  if (family == AF_INET) return zero(0, 4);
  // :: or ::ffff:0.0.0.0 (RFC 4291 2.5.5.2)
  return zero(0, 10) && zero(12, 16) &&
         ((bytes[10] == 0 && bytes[11] == 0) || (bytes[10] == 0xff && bytes[11] == 0xff));
}

std::size_t FlowKeyHash::operator()(const FlowKey& k) const noexcept {
  // Word-at-a-time multiply-xorshift over the fields that identify the flow: the scanners hash
  // every connection of the host on every poll, so this is on a hot path.
  auto word = [](const std::uint8_t* p) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
  };
  auto mix = [](std::uint64_t h, std::uint64_t w) {
    h ^= w * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    return h * 0xBF58476D1CE4E5B9ULL;
  };
  std::uint64_t h = static_cast<std::uint64_t>(k.protocol) << 32 |
                    static_cast<std::uint64_t>(k.src_port) << 16 | k.dst_port;
  h = mix(0x243F6A8885A308D3ULL, h);
  h = mix(h, word(k.src.bytes.data()));
  h = mix(h, word(k.src.bytes.data() + 8));
  h = mix(h, word(k.dst.bytes.data()));
  h = mix(h, word(k.dst.bytes.data() + 8));
  return static_cast<std::size_t>(h ^ (h >> 32));
}

}  // namespace flowd
