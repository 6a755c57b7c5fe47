// SPDX-License-Identifier: Apache-2.0
// Value decoding shared by the v1/v5, v9 and IPFIX decoders: big-endian reads, and one exported
// value of a given IANA abstract data type (RFC 7011 §6.1, reduced-size encoding §6.2) turned into
// a FieldValue, times included (RFC 7011 §6.1.7-6.1.10). Internal header of src/collector/.
// decode_value is defined here, inline, because it runs once per field of every record: the data
// set loop (decoder.cpp) and the v5 layouts (netflow_v5.cpp) inline it as they did when it lived
// beside them.
#pragma once

#include <sys/socket.h>  // AF_INET6 (the constant only)

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>

#include "collector/flow_record.hpp"
#include "collector/ie_names.hpp"

namespace flowd::collector {

using Bytes = std::span<const std::uint8_t>;

inline std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}
inline std::uint64_t getn(const std::uint8_t* p, std::size_t n) {  // n <= 8, big-endian
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// Clock::duration counts nanoseconds in 64 bits (about ±292 years): exported times beyond ±2^33
// seconds (year 2242) are clamped rather than overflowing.
inline constexpr std::int64_t kMaxSeconds = std::int64_t{1} << 33;

inline TimePoint from_seconds(std::int64_t s) {
  s = std::clamp(s, -kMaxSeconds, kMaxSeconds);
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::seconds{s})};
}

inline TimePoint from_millis(std::int64_t ms) {
  ms = std::clamp(ms, -kMaxSeconds * 1000, kMaxSeconds * 1000);
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds{ms})};
}

namespace values_detail {

constexpr std::int64_t kNtpToUnix = 2208988800;  // seconds from 1900-01-01 to 1970-01-01

inline TimePoint from_ntp(std::uint64_t v, bool micro) {
  std::int64_t secs = static_cast<std::int64_t>(v >> 32) - kNtpToUnix;
  std::uint64_t frac = v & 0xFFFFFFFFu;
  if (micro) frac &= ~std::uint64_t{0x7FF};  // RFC 7011 §6.1.9: the low 11 bits are ignored
  // Rounded to the nearest nanosecond (microsecond for dateTimeMicroseconds, whose 21 fraction bits
  // cannot hold more), so that printing with 9 (6) truncated digits shows the exported value.
  auto ns = static_cast<std::int64_t>((frac * 1000000000ull + (1ull << 31)) >> 32);
  if (micro) ns = (ns + 500) / 1000 * 1000;
  return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::seconds{secs} +
                                                               std::chrono::nanoseconds{ns})};
}

inline void set_octets(FieldValue& v, ValueKind kind, const std::uint8_t* p, std::size_t n) {
  v.kind = kind;
  v.bytes.assign(reinterpret_cast<const char*>(p), n);
}

}  // namespace values_detail

// Fills `v` in place: records are decoded field by field into storage that already exists, which
// keeps the per-record cost at a few stores (docs/benchmarks.md, decode-only figures).
inline void decode_value(IeType type, const std::uint8_t* p, std::size_t n, FieldValue& v) {
  switch (type) {
    case IeType::kUnsigned:
      if (n < 1 || n > 8) break;
      v.kind = ValueKind::kUnsigned;
      v.u = getn(p, n);
      return;
    case IeType::kSigned: {
      if (n < 1 || n > 8) break;
      std::uint64_t raw = getn(p, n);
      if (n < 8 && (p[0] & 0x80)) raw |= ~std::uint64_t{0} << (8 * n);  // sign-extend
      v.kind = ValueKind::kSigned;
      v.i = static_cast<std::int64_t>(raw);
      return;
    }
    case IeType::kFloat32:
    case IeType::kFloat64:
      if (n == 4) {
        v.kind = ValueKind::kFloat;
        v.f = std::bit_cast<float>(get32(p));
        return;
      }
      if (n == 8 && type == IeType::kFloat64) {
        v.kind = ValueKind::kFloat;
        v.f = std::bit_cast<double>(getn(p, 8));
        return;
      }
      break;
    case IeType::kBoolean:
      if (n != 1) break;
      v.kind = ValueKind::kBool;
      v.u = p[0] == 1 ? 1 : 0;  // RFC 7011 §6.1.5: 1 = true, 2 = false
      return;
    case IeType::kMac:
      if (n != 6) break;
      values_detail::set_octets(v, ValueKind::kMac, p, n);
      return;
    case IeType::kString: {
      // NetFlow v9 exporters pad fixed-size strings with NULs (IF_NAME); drop the padding.
      std::size_t len = n;
      while (len > 0 && p[len - 1] == 0) --len;
      values_detail::set_octets(v, ValueKind::kString, p, len);
      return;
    }
    case IeType::kIpv4:
      if (n != 4) break;
      v.kind = ValueKind::kIpv4;
      v.ip = IpAddress::v4(get32(p));
      return;
    case IeType::kIpv6:
      if (n != 16) break;
      v.kind = ValueKind::kIpv6;
      v.ip.family = AF_INET6;
      std::memcpy(v.ip.bytes.data(), p, 16);
      return;
    case IeType::kDateTimeSeconds:
      if (n < 1 || n > 8) break;
      v.kind = ValueKind::kDateTime;
      v.precision = TimePrecision::kSeconds;
      v.u = getn(p, n);
      v.time = from_seconds(v.u > static_cast<std::uint64_t>(kMaxSeconds)
                                ? kMaxSeconds
                                : static_cast<std::int64_t>(v.u));
      return;
    case IeType::kDateTimeMilliseconds:
      if (n < 1 || n > 8) break;
      v.kind = ValueKind::kDateTime;
      v.precision = TimePrecision::kMilliseconds;
      v.u = getn(p, n);
      v.time = from_millis(v.u > static_cast<std::uint64_t>(kMaxSeconds * 1000)
                               ? kMaxSeconds * 1000
                               : static_cast<std::int64_t>(v.u));
      return;
    case IeType::kDateTimeMicroseconds:
    case IeType::kDateTimeNanoseconds:
      if (n != 8) break;
      v.kind = ValueKind::kDateTime;
      v.precision = type == IeType::kDateTimeMicroseconds ? TimePrecision::kMicroseconds
                                                          : TimePrecision::kNanoseconds;
      v.u = getn(p, 8);
      v.time = values_detail::from_ntp(v.u, type == IeType::kDateTimeMicroseconds);
      return;
    case IeType::kOctetArray:
      break;
  }
  values_detail::set_octets(v, ValueKind::kOctets, p, n);
}

}  // namespace flowd::collector
