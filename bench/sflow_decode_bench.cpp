// SPDX-License-Identifier: Apache-2.0
// Decode-only cost of the sFlow v5 decoder on one core: the datagrams of the pmacctd sfprobe
// captures in tests/fixtures/sflow (7 flow samples of up to 128 header bytes per datagram), and
// synthetic datagrams of many samples, decoded again and again by one SflowDecoder into a reused
// RecordBatch, as a receive thread would. Reports flow samples/s (items_per_second) and
// datagrams/s.
//   flowd_sflow_decode_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "collector/pcap_reader.hpp"
#include "collector/sflow.hpp"
#include "sflow_builder.hpp"

namespace {

namespace fc = flowd::collector;
namespace sb = flowd::test::sflow;

struct Datagram {
  std::vector<std::uint8_t> bytes;
  fc::Exporter from;
};

void run(benchmark::State& state, const std::vector<Datagram>& datagrams, bool apply_sampling) {
  fc::SflowLimits limits;
  limits.apply_sampling = apply_sampling;
  fc::SflowDecoder d(limits);
  fc::RecordBatch out;
  const auto now = flowd::Clock::now();
  std::size_t samples = 0, packets = 0, errors = 0;
  for (auto _ : state) {
    for (const auto& p : datagrams) {
      out.clear();
      const auto r = d.decode(p.bytes, p.from, now, out);
      samples += r.records;
      errors += r.error_count();
      ++packets;
      benchmark::DoNotOptimize(out.begin());
    }
  }
  if (errors) state.SkipWithError("decode errors");
  state.SetItemsProcessed(static_cast<std::int64_t>(samples));
  state.counters["datagrams_per_second"] =
      benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate);
  state.counters["samples_per_datagram"] =
      packets ? static_cast<double>(samples) / static_cast<double>(packets) : 0;
}

void decode_capture(benchmark::State& state, const std::string& name) {
  std::vector<Datagram> datagrams;
  std::size_t skipped = 0;
  fc::read_capture(
      std::string(FLOWD_SOURCE_DIR) + "/tests/fixtures/sflow/" + name,
      [&](const fc::CapturedPayload& p) {
        datagrams.push_back({p.bytes, p.exporter});
      },
      skipped);
  run(state, datagrams, state.range(0) != 0);
}

// One datagram of `n` flow samples, each with extended_switch and a 128-byte sampled header of a
// VLAN-tagged IPv6 TCP frame behind a hop-by-hop header (the most parsing a typical sample needs).
void decode_synthetic(benchmark::State& state) {
  const auto n = static_cast<std::uint32_t>(state.range(0));
  auto rest = sb::concat({sb::ext_header(6), sb::tcp(40002, 7001, 0x18)});
  rest.resize(128 - 18 - 40, 0);
  const auto frame = sb::ethernet(0x86DD, sb::ipv6(0, rest, 0x12345, 0x20), {0x81000000u | 42});
  std::vector<std::uint8_t> dgram = sb::words({5, 1, 0xC0000201, 0, 1, 1000, n});
  for (std::uint32_t i = 0; i < n; ++i)
    sb::append(dgram, sb::flow_sample(i + 1, 1000, (i + 1) * 1000, 3, 7,
                                      {sb::extended_switch(), sb::sampled_header(frame, 1518)}));
  run(state, {Datagram{dgram, fc::Exporter{flowd::IpAddress::v4(0x7F000001), 6343}}}, false);
}

}  // namespace

BENCHMARK_CAPTURE(decode_capture, pmacctd_rate1, std::string("pmacctd-sfprobe-rate1.pcap"))->Arg(0);
BENCHMARK_CAPTURE(decode_capture, pmacctd_rate4, std::string("pmacctd-sfprobe-rate4.pcap"))
    ->Arg(0)
    ->Arg(1);
BENCHMARK(decode_synthetic)->Arg(7)->Arg(64);

BENCHMARK_MAIN();
