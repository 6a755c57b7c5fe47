// SPDX-License-Identifier: Apache-2.0
// Decode-only cost of the NetFlow/IPFIX decoders on the real exporter captures in shared/fixtures:
// every data packet of a capture is decoded again and again by one Decoder (one core) whose
// templates were learnt from the same capture first. Reports records/s (items_per_second) and
// packets/s.
//   flowd_netflow_decode_bench [--benchmark_filter=...] [FIXTURES_DIR]
#include <benchmark/benchmark.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "core/registry_loader.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "plugins/netflow/observed_metrics.hpp"

namespace {

std::string g_fixtures = FLOWD_FIXTURES;

struct Capture {
  std::vector<flowd::collector::CapturedPayload> payloads;
};

Capture load(const std::string& name) {
  Capture c;
  std::size_t skipped = 0;
  flowd::collector::read_capture(
      g_fixtures + "/netflow/" + name,
      [&](const flowd::collector::CapturedPayload& p) { c.payloads.push_back(p); }, skipped);
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
  state.counters["packets_per_second"] =
      benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate);
  state.counters["records_per_packet"] =
      packets ? static_cast<double>(records) / static_cast<double>(packets) : 0;
}

// Decode plus what the netflow plugin does with each record before the bus: the 5-tuple, label
// validation against the registry (label_trust = registered), the stability check in the flow table
// and the per-tag volume sums (`volume`; without them, what issue 11's "decode with label
// validation on" names). Compared with decode_capture in the same run (issue 11: at most 5 %).
void decode_and_validate(benchmark::State& state, const std::string& name, bool volume_sums) {
  using namespace flowd::collector;
  Capture c = load(name);
  Decoder d;
  RecordBatch out;
  std::string error;
  auto registry = flowd::ScitagsRegistry::parse(flowd::registry_snapshot_json(), error);
  flowd::netflow::FlowTracker tracker(
      {}, flowd::netflow::LabelPolicy(flowd::netflow::LabelTrust::kRegistered, {}),
      std::chrono::seconds(60), 100000);
  flowd::netflow::VolumeBatch volume;
  std::vector<flowd::FlowID> events;
  auto now = flowd::Clock::now();
  for (const auto& p : c.payloads) d.decode(p.bytes, p.exporter, now, out);
  std::size_t records = 0;
  std::array<double, flowd::netflow::kLabelResultCount> results{};
  for (auto _ : state) {
    for (const auto& p : c.payloads) {
      out.clear();
      events.clear();
      volume.clear();
      auto r = d.decode(p.bytes, p.exporter, now, out);
      records += r.records;
      // As NetflowPlugin::observe_records does, less its lock and the Prometheus counters.
      flowd::netflow::Observation o;
      for (const auto& rec : out) {
        tracker.observe(rec, now, registry, events, o);
        if (o.label) ++results[static_cast<std::size_t>(*o.label)];
        if (volume_sums && !rec.options) volume.add(rec, o.tag);
      }
      benchmark::DoNotOptimize(events.data());
      benchmark::DoNotOptimize(volume);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(records));
  double labels = 0;
  for (double n : results) labels += n;
  state.counters["labels_per_record"] = records ? labels / static_cast<double>(records) : 0;
}

}  // namespace

BENCHMARK_CAPTURE(decode_capture, v5_softflowd, std::string("softflowd-v5.pcap"));
BENCHMARK_CAPTURE(decode_capture, v5_pmacctd, std::string("pmacctd-nfprobe-v5.pcap"));
BENCHMARK_CAPTURE(decode_capture, v9_softflowd, std::string("softflowd-v9.pcap"));
BENCHMARK_CAPTURE(decode_capture, v9_pmacctd, std::string("pmacctd-nfprobe-v9.pcap"));
BENCHMARK_CAPTURE(decode_capture, ipfix_softflowd, std::string("softflowd-ipfix.pcap"));
BENCHMARK_CAPTURE(decode_capture, ipfix_softflowd_biflow,
                  std::string("softflowd-ipfix-biflow-ether.pcap"));
BENCHMARK_CAPTURE(decode_capture, ipfix_pmacctd, std::string("pmacctd-nfprobe-v10.pcap"));
// 2,400 IPv6 records with random flow labels (shared/fixtures/observed): every record has a label.
BENCHMARK_CAPTURE(decode_capture, ipfix_random_labels,
                  std::string("../observed/random-labels-ipfix.pcap"));
BENCHMARK_CAPTURE(decode_and_validate, ipfix_softflowd, std::string("softflowd-ipfix.pcap"), true);
BENCHMARK_CAPTURE(decode_and_validate, ipfix_random_labels,
                  std::string("../observed/random-labels-ipfix.pcap"), true);
BENCHMARK_CAPTURE(decode_and_validate, ipfix_random_labels_without_volume,
                  std::string("../observed/random-labels-ipfix.pcap"), false);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc > 1) g_fixtures = argv[1];
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
