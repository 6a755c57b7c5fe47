// SPDX-License-Identifier: Apache-2.0
// The kafka backend's glue: events from its queue are written (event_json) and produced
// (kafka_producer) on the backend's thread; delivery reports are served on a second thread of the
// backend's run(), woken by librdkafka's eventfd; with `records = yes` a RecordSink attached to
// Context::records lets the collector plugins' workers produce decoded records themselves.
// Configuration: kafka_config.
#include "backends/kafka/kafka_backend.hpp"

#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/kafka/event_json.hpp"
#include "backends/kafka/kafka_config.hpp"
#include "backends/kafka/kafka_producer.hpp"
#include "backends/kafka/record_sinks.hpp"
#include "flowd/event_queue.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/record_sink.hpp"

namespace flowd::kafka {
namespace {

class KafkaBackend final : public Backend {
 public:
  static constexpr std::size_t kBatch = 1024;

  KafkaBackend(KafkaConfig cfg, Context& ctx)
      : cfg_(std::move(cfg)),
        log_(get_logger("backend.kafka")),
        registry_(ctx.registry),
        hostname_(ctx.hostname),
        heartbeats_(ctx.heartbeats),
        records_tap_(ctx.records),
        producer_(std::make_shared<Producer>(cfg_, ctx.metrics, log_)) {}

  void start() override {
    producer_->open();
    if (cfg_.records && records_tap_) {
      sink_ = std::make_shared<RecordsToKafka>(producer_);
      // A predecessor that stopped for this reload held what was decoded meanwhile: produced
      // now, after what it flushed and before what comes next (the held sink passes what it is
      // offered from now on to sink_).
      if (auto* held = dynamic_cast<HeldRecords*>(records_tap_->sink().get())) {
        // It logs what it held, handed over and dropped.
        held->hand_over(sink_, [&](std::span<const RecordMessage> msgs) {
          return producer_->produce_batch(Topic::kRecords, msgs);
        });
      }
      records_tap_->replace(sink_);
    }
    log_->info("publishing flow events to Kafka topic '{}'{} at {}", cfg_.topic,
               cfg_.records ? " and decoded records to '" + cfg_.records_topic + "'" : "",
               cfg_.brokers);
  }

  void run(std::stop_token stop, EventQueue& in) override {
    // A failure of the delivery thread ends this run() too (and with it the daemon).
    std::stop_source local;
    std::stop_callback forward(stop, [&local] { local.request_stop(); });
    std::exception_ptr failure;
    std::mutex failure_mu;
    auto hb = heartbeats_ ? heartbeats_->add("backend.kafka delivery") : nullptr;
    std::jthread reports([&](std::stop_token st) {
      bind_thread_heartbeat(hb.get());
      try {
        producer_->serve(st);
      } catch (...) {
        std::lock_guard lock(failure_mu);
        failure = std::current_exception();
        local.request_stop();
      }
      bind_thread_heartbeat(nullptr);
    });
    std::vector<FlowID> batch;
    while (in.pop_batch(batch, kBatch, local.get_token())) {
      auto registry = registry_.get();
      const TimePoint now = Clock::now();
      for (const auto& f : batch) write(f, *registry, now);
    }
    reports.request_stop();
    reports.join();
    std::lock_guard lock(failure_mu);
    if (failure) std::rethrow_exception(failure);
  }

  void handle(const FlowID& flow) override { write(flow, *registry_.get(), Clock::now()); }

  void stop() override {
    if (sink_ && records_tap_) {
      // Records decoded while the flush below waits (up to flush_timeout with the brokers down)
      // are held for a successor, or counted as dropped if none comes (record_sinks.hpp).
      auto held = std::make_shared<HeldRecords>(producer_->dropped_counter(Topic::kRecords),
                                                cfg_.queue_max_messages, kMaxHeldBytes, log_);
      // A worker still holding sink_ hands its records on.
      if (records_tap_->replace_if(sink_.get(), held)) sink_->replace_by(held);
    }
    producer_->flush(cfg_.flush_timeout);
  }

  // What a stopping backend holds for its successor, at most (and queue_buffering_max_messages).
  static constexpr std::size_t kMaxHeldBytes = 64u << 20;

 private:
  void write(const FlowID& flow, const ScitagsRegistry& registry, TimePoint now) {
    json_.clear();
    key_.clear();
    append_event_json(json_, flow, registry, hostname_, now);
    append_event_key(key_, flow);
    if (log_->should_log(spdlog::level::debug)) log_->debug("event {}", json_);
    producer_->produce(Topic::kEvents, key_, json_);
  }

  KafkaConfig cfg_;
  std::shared_ptr<spdlog::logger> log_;
  RegistryHandle& registry_;
  std::string hostname_;
  HeartbeatBoard* heartbeats_;
  RecordTap* records_tap_;
  std::shared_ptr<Producer> producer_;
  std::shared_ptr<RecordsToKafka> sink_;
  std::string json_, key_;  // reused: they keep their capacity
};

std::unique_ptr<Backend> create(const Section& cfg, Context& ctx) {
  return std::make_unique<KafkaBackend>(KafkaConfig::from(cfg), ctx);
}

bool takes_records(const Section& cfg) {
  return cfg.get_bool("records");
}

}  // namespace

const BackendInfo& backend_info() {
  static const BackendInfo info{
      "kafka", "flow events (and, with records = yes, decoded collector records) to Kafka as JSON",
      config_keys(), create, takes_records};
  return info;
}

}  // namespace flowd::kafka
