// SPDX-License-Identifier: Apache-2.0
#include "flowd/flow_id.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>

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
    case FlowState::kStart: return "start";
    case FlowState::kEnd: return "end";
    case FlowState::kOngoing: return "ongoing";
  }
  return "?";
}

std::string_view to_string(Protocol p) { return p == Protocol::kTcp ? "tcp" : "udp"; }

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

bool IpAddress::is_v4() const { return family == AF_INET; }
bool IpAddress::is_v6() const { return family == AF_INET6; }

std::size_t FlowKeyHash::operator()(const FlowKey& k) const noexcept {
  // Word-at-a-time multiply-xorshift over the fields that identify the flow: the scanners hash every
  // connection of the host on every poll, so this is on a hot path.
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
  std::uint64_t h = static_cast<std::uint64_t>(k.protocol) << 32 | static_cast<std::uint64_t>(k.src_port) << 16 |
                    k.dst_port;
  h = mix(0x243F6A8885A308D3ULL, h);
  h = mix(h, word(k.src.bytes.data()));
  h = mix(h, word(k.src.bytes.data() + 8));
  h = mix(h, word(k.dst.bytes.data()));
  h = mix(h, word(k.dst.bytes.data() + 8));
  return static_cast<std::size_t>(h ^ (h >> 32));
}

std::string format_time(TimePoint t, TimePrecision precision) {
  using namespace std::chrono;
  // Years 0000..9999 only: RFC 3339 has four year digits.
  constexpr std::int64_t kMinSecs = -62167219200, kMaxSecs = 253402300799;
  const auto ns_total = duration_cast<nanoseconds>(t.time_since_epoch()).count();
  std::int64_t secs = ns_total / 1'000'000'000;
  std::int64_t frac = ns_total % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  if (secs < kMinSecs) secs = kMinSecs, frac = 0;
  if (secs > kMaxSecs) secs = kMaxSecs, frac = 999'999'999;
  // Fireflies are stamped several times a second: reuse the formatted date and time of day.
  thread_local std::optional<std::int64_t> cached_secs;
  thread_local char cached[32];
  if (secs != cached_secs) {
    const auto tt = static_cast<std::time_t>(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    fmt::format_to_n(cached, sizeof cached, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached[19] = '\0';
    cached_secs = secs;
  }
  const int digits = static_cast<int>(precision);
  char out[40];
  std::memcpy(out, cached, 19);
  std::size_t n = 19;
  if (digits > 0) {
    out[n++] = '.';
    for (int i = digits; i < 9; ++i) frac /= 10;  // truncate to `digits`
    for (int i = digits - 1; i >= 0; --i) {
      out[n + static_cast<std::size_t>(i)] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    n += static_cast<std::size_t>(digits);
  }
  std::memcpy(out + n, "+00:00", 6);
  return std::string(out, n + 6);
}

std::string format_time_iso(TimePoint t) {
  return format_time(t, TimePrecision::kMicroseconds);
}

}  // namespace flowd
