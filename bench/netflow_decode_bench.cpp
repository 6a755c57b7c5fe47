// SPDX-License-Identifier: Apache-2.0
// Decode-only cost of the NetFlow/IPFIX decoders on the real exporter captures in shared/fixtures:
// every data packet of a capture is decoded again and again by one Decoder (one core) whose templates
// were learnt from the same capture first. Reports records/s (items_per_second) and packets/s.
//   flowd_netflow_decode_bench [--benchmark_filter=...] [FIXTURES_DIR]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"

namespace {

std::string g_fixtures = FLOWD_FIXTURES;

struct Capture {
  std::vector<flowd::collector::CapturedPayload> payloads;
};

Capture load(const std::string& name) {
  Capture c;
  std::size_t skipped = 0;
  flowd::collector::read_capture(g_fixtures + "/netflow/" + name,
                                 [&](const flowd::collector::CapturedPayload& p) { c.payloads.push_back(p); },
                                 skipped);
  return c;
}

void decode_capture(benchmark::State& state, const std::string& name) {
  using namespace flowd::collector;
  Capture c = load(name);
  Decoder d;
  RecordBatch out;
  auto now = flowd::Clock::now();
  // Learn the templates (and options) once, as a running collector would have.
  for (const auto& p : c.payloads) d.decode(p.bytes, p.exporter, now, out);
  std::size_t records = 0, packets = 0;
  for (auto _ : state) {
    for (const auto& p : c.payloads) {
      out.clear();
      auto r = d.decode(p.bytes, p.exporter, now, out);
      records += r.records;
      ++packets;
      benchmark::DoNotOptimize(out.begin());
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
  state.counters["packets_per_second"] = benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate);
  state.counters["records_per_packet"] = packets ? static_cast<double>(records) / static_cast<double>(packets) : 0;
}

}  // namespace

BENCHMARK_CAPTURE(decode_capture, v5_softflowd, std::string("softflowd-v5.pcap"));
BENCHMARK_CAPTURE(decode_capture, v5_pmacctd, std::string("pmacctd-nfprobe-v5.pcap"));
BENCHMARK_CAPTURE(decode_capture, v9_softflowd, std::string("softflowd-v9.pcap"));
BENCHMARK_CAPTURE(decode_capture, v9_pmacctd, std::string("pmacctd-nfprobe-v9.pcap"));
BENCHMARK_CAPTURE(decode_capture, ipfix_softflowd, std::string("softflowd-ipfix.pcap"));
BENCHMARK_CAPTURE(decode_capture, ipfix_softflowd_biflow, std::string("softflowd-ipfix-biflow-ether.pcap"));
BENCHMARK_CAPTURE(decode_capture, ipfix_pmacctd, std::string("pmacctd-nfprobe-v10.pcap"));

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc > 1) g_fixtures = argv[1];
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
