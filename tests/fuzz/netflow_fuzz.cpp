// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the NetFlow v1/v5/v9 + IPFIX decoder. The Decoder persists across inputs
// (templates and held data from earlier inputs meet later ones, as on a real socket); the first
// input byte picks the exporter (so inputs can share or not share template state) and UDP or TCP
// limits, the rest is the datagram. Every record must also survive JSON rendering. Records are
// decoded into one reused RecordBatch, as in the plugin, and the UDP decoder applies sampling.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "collector/decoder.hpp"

#include "direct_writer_check.hpp"

namespace fc = flowd::collector;

namespace {

fc::DecoderLimits limits(bool udp) {
  fc::DecoderLimits l;
  l.udp = udp;
  l.apply_sampling = udp;             // one decoder scales counters, the other does not
  l.max_templates_per_exporter = 64;  // keep memory bounded across millions of inputs
  l.max_pending_records = 64;
  l.max_pending_bytes = 1 << 16;
  l.template_timeout = std::chrono::seconds{30};
  l.max_pending_age = std::chrono::seconds{10};
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fc::Decoder udp_decoder(limits(true));
  static fc::Decoder tcp_decoder(limits(false));
  static std::uint64_t calls = 0;
  static flowd::TimePoint now = flowd::TimePoint{std::chrono::seconds{1795356761}};

  if (size < 1) return 0;
  const std::uint8_t selector = data[0];
  fc::Exporter from{flowd::IpAddress::v4(0xC0000200u | (selector & 3u)),
                    static_cast<std::uint16_t>(2055 + ((selector >> 2) & 1))};
  fc::Decoder& dec = (selector & 0x80) ? tcp_decoder : udp_decoder;

  static fc::RecordBatch out;  // reused, as the plugin does: stale fields must never leak
  out.clear();
  const auto result = dec.decode(std::span(data + 1, size - 1), from, now, out);
  if (result.records != out.size()) __builtin_trap();
  flowd::fuzz::check_direct_writer(out);

  ++calls;
  now += std::chrono::seconds{1};
  if (calls % 64 == 0) dec.expire(now);
  if (calls % 4096 == 0) tcp_decoder.forget(from);
  return 0;
}
