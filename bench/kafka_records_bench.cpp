// SPDX-License-Identifier: Apache-2.0
// Records per second from the collector path to Kafka: the exporter captures of shared/fixtures
// are decoded by one Decoder (templates learnt first, as a running collector has them), each batch
// written as the netflow plugin writes it for `records = yes` (RecordJsonWriter, `flowd decode`'s
// form, into one buffer) and produced through the kafka backend's Producer (produce_batch) to
// librdkafka's mock cluster (the Kafka protocol over TCP on loopback, in this process), compressed
// as asked. Reports, per codec: the collector thread's records/s (its CPU time: what one receive
// worker can hand over), the wall time until the brokers acknowledged everything, the JSON bytes
// per record and the bytes per record librdkafka sent (tx_bytes: compressed batches and protocol).
// --dom adds a row with the DOM writer the collector used before (collector::to_json().dump()).
//   flowd_kafka_records_bench [--records N] [--dom] [--codec lz4|zstd|none|...]... [FIXTURES_DIR]
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <prometheus/registry.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/kafka/kafka_producer.hpp"
#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/record_json.hpp"
#include "collector/record_json_writer.hpp"
#include "flowd/log.hpp"
#include "flowd/record_sink.hpp"

namespace {

using namespace flowd;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Result {
  double cpu_s = 0, wall_s = 0, json_bytes = 0, tx_bytes = 0;
  std::size_t records = 0, dropped = 0;
};

enum class Json { kNone, kDom, kDirect };

// The bytes librdkafka sent to the brokers ("tx_bytes" of its statistics): compressed record
// batches plus the protocol around them.
double tx_bytes_of(std::string_view stats) {
  try {
    return nlohmann::json::parse(stats).value("tx_bytes", 0.0);
  } catch (const std::exception&) {
    return 0;
  }
}

Result run(const std::vector<collector::CapturedPayload>& payloads, const std::string& bootstrap,
           const std::string& codec, std::size_t want, Json json_path, bool produce) {
  kafka::KafkaConfig cfg;
  cfg.brokers = bootstrap;
  cfg.records = true;
  cfg.properties = {{"bootstrap.servers", bootstrap},
                    {"compression.codec", codec},
                    {"linger.ms", "5"},
                    {"acks", "-1"},
                    {"queue.buffering.max.messages", "2000000"},
                    {"statistics.interval.ms", "100"},
                    {"log_level", "3"}};
  prometheus::Registry metrics;
  kafka::Producer producer(cfg, metrics, get_logger("bench"));
  std::atomic<double> tx_bytes{0};
  producer.on_statistics([&](std::string_view s) { tx_bytes = tx_bytes_of(s); });
  producer.open();
  std::optional<std::jthread> reports(std::in_place,
                                      [&](std::stop_token st) { producer.serve(st); });

  collector::Decoder d;
  collector::RecordBatch out;
  const auto now = Clock::now();
  for (const auto& p : payloads) d.decode(p.bytes, p.exporter, now, out);  // templates
  // What the netflow plugin does per batch (netflow_plugin.cpp, write_records): the JSON lines
  // of the batch in one buffer, one message per line, one produce_batch call.
  collector::RecordJsonWriter writer;
  std::string lines, key;
  std::vector<std::size_t> ends;
  std::vector<RecordMessage> messages;
  Result r;
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = thread_cpu_seconds();
  while (r.records < want) {
    for (const auto& p : payloads) {
      out.clear();
      d.decode(p.bytes, p.exporter, now, out);
      if (out.empty()) continue;
      r.records += out.size();
      if (json_path == Json::kNone) continue;
      lines.clear();
      ends.clear();
      for (const auto& rec : out) {
        if (json_path == Json::kDom)
          lines += collector::to_json(rec).dump();
        else
          writer.append(lines, rec);
        ends.push_back(lines.size());
        lines.push_back('\n');
      }
      r.json_bytes += static_cast<double>(lines.size() - ends.size());
      if (!produce) continue;
      key = out[0].exporter.address.to_string();
      messages.clear();
      std::size_t begin = 0;
      for (std::size_t end : ends) {
        messages.push_back({key, std::string_view(lines).substr(begin, end - begin)});
        begin = end + 1;
      }
      r.dropped += messages.size() - producer.produce_batch(kafka::Topic::kRecords, messages);
    }
  }
  r.cpu_s = thread_cpu_seconds() - cpu0;
  reports.reset();
  producer.flush(std::chrono::minutes(2));
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  if (produce) {
    // One more statistics emission, after the last batch went out.
    reports.emplace([&](std::stop_token st) { producer.serve(st); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    reports.reset();
    r.tx_bytes = tx_bytes;
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string fixtures = FLOWD_FIXTURES;
  std::size_t want = 2000000;
  std::vector<std::string> codecs;
  bool dom = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--records" && i + 1 < argc)
      want = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--dom")
      dom = true;
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

  std::printf("%-28s %10s %14s %14s %11s %11s %8s\n", "path", "records", "records/s cpu",
              "records/s wall", "JSON B/rec", "wire B/rec", "dropped");
  auto print = [](const std::string& what, const Result& r) {
    const auto n = static_cast<double>(r.records);
    std::printf("%-28s %10zu %14.0f %14.0f %11.1f %11.1f %8zu\n", what.c_str(), r.records,
                n / r.cpu_s, n / r.wall_s, r.json_bytes / n, r.tx_bytes / n, r.dropped);
    std::fflush(stdout);
  };
  print("decode only", run(payloads, bootstrap, "none", want, Json::kNone, false));
  if (dom) print("decode+json dom", run(payloads, bootstrap, "none", want, Json::kDom, false));
  print("decode+json", run(payloads, bootstrap, "none", want, Json::kDirect, false));
  for (const auto& c : codecs)
    print("decode+json+kafka " + c, run(payloads, bootstrap, c, want, Json::kDirect, true));
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
