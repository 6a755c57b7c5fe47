// SPDX-License-Identifier: Apache-2.0
// Records per second from the collector path to Kafka: the exporter captures of shared/fixtures
// are decoded by one Decoder (templates learnt first, as a running collector has them), each record
// written as the netflow plugin writes it for `records = yes` (collector::to_json, `flowd decode`'s
// form) and produced through the kafka backend's Producer to librdkafka's mock cluster (the Kafka
// protocol over TCP on loopback, in this process), compressed as asked. Reports, per codec: the
// collector thread's records/s (its CPU time: what one receive worker can hand over), the wall
// time until the brokers acknowledged everything, and the JSON bytes per record.
//   flowd_kafka_records_bench [--records N] [--codec lz4|zstd|none|...]... [FIXTURES_DIR]
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_producer.hpp"
#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/record_json.hpp"
#include "flowd/log.hpp"

namespace {

using namespace flowd;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Result {
  double cpu_s = 0, wall_s = 0, json_bytes = 0;
  std::size_t records = 0, dropped = 0;
};

Result run(const std::vector<collector::CapturedPayload>& payloads, const std::string& bootstrap,
           const std::string& codec, std::size_t want, bool produce) {
  kafka::KafkaConfig cfg;
  cfg.brokers = bootstrap;
  cfg.records = true;
  cfg.properties = {{"bootstrap.servers", bootstrap},
                    {"compression.codec", codec},
                    {"linger.ms", "5"},
                    {"acks", "-1"},
                    {"queue.buffering.max.messages", "2000000"},
                    {"log_level", "3"}};
  prometheus::Registry metrics;
  kafka::Producer producer(cfg, metrics, get_logger("bench"));
  producer.open();
  std::jthread reports([&](std::stop_token st) { producer.serve(st); });

  collector::Decoder d;
  collector::RecordBatch out;
  const auto now = Clock::now();
  for (const auto& p : payloads) d.decode(p.bytes, p.exporter, now, out);  // templates
  std::string json, key;
  Result r;
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_seconds();
  while (r.records < want) {
    for (const auto& p : payloads) {
      out.clear();
      d.decode(p.bytes, p.exporter, now, out);
      if (out.empty()) continue;
      key = out[0].exporter.address.to_string();
      for (const auto& rec : out) {
        json = collector::to_json(rec).dump();
        r.json_bytes += static_cast<double>(json.size());
        if (produce && !producer.produce(kafka::Topic::kRecords, key, json)) ++r.dropped;
      }
      r.records += out.size();
    }
  }
  r.cpu_s = thread_cpu_seconds() - cpu0;
  reports.request_stop();
  reports.join();
  producer.flush(std::chrono::minutes(2));
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string fixtures = FLOWD_FIXTURES;
  std::size_t want = 2000000;
  std::vector<std::string> codecs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--records" && i + 1 < argc)
      want = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--codec" && i + 1 < argc)
      codecs.emplace_back(argv[++i]);
    else
      fixtures = a;
  }
  if (codecs.empty()) codecs = {"lz4", "zstd"};
  setup_logging(spdlog::level::warn);
  std::vector<collector::CapturedPayload> payloads;
  std::size_t skipped = 0;
  for (const char* name : {"softflowd-ipfix-milli.pcap", "pmacctd-nfprobe-v9.pcap"})
    collector::read_capture(
        fixtures + "/netflow/" + name,
        [&](const collector::CapturedPayload& p) { payloads.push_back(p); }, skipped);
  if (payloads.empty()) {
    std::fprintf(stderr, "no captures under %s/netflow\n", fixtures.c_str());
    return 1;
  }
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, 1);
  rd_kafka_mock_topic_create(mc, "flowd.records", 1, 1);
  const std::string bootstrap = rd_kafka_mock_cluster_bootstraps(mc);

  std::printf("%-22s %10s %14s %14s %12s %10s\n", "path", "records", "records/s cpu",
              "records/s wall", "JSON B/rec", "dropped");
  auto print = [](const std::string& what, const Result& r) {
    std::printf("%-22s %10zu %14.0f %14.0f %12.1f %10zu\n", what.c_str(), r.records,
                static_cast<double>(r.records) / r.cpu_s, static_cast<double>(r.records) / r.wall_s,
                r.json_bytes / static_cast<double>(r.records), r.dropped);
  };
  print("decode+json (no kafka)", run(payloads, bootstrap, "none", want, false));
  for (const auto& c : codecs)
    print("decode+json+kafka " + c, run(payloads, bootstrap, c, want, true));
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
