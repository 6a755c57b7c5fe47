// SPDX-License-Identifier: Apache-2.0
// One librdkafka producer and its counting: produce() never blocks (RD_KAFKA_MSG_F_COPY, no
// RD_KAFKA_MSG_F_BLOCK; librdkafka's queue is bounded by queue.buffering.max.messages, and what it
// refuses is dropped and counted); serve() runs the delivery reports on the caller's thread,
// waiting on an eventfd librdkafka writes when its main queue has something (no timed polling);
// flush() gives the queued messages at most a given time at stop.
// Metric: flowd_kafka_messages_total{topic, result="delivered|failed|dropped"}, topic one of the
// configured topics.
#pragma once

#include <librdkafka/rdkafka.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "backends/kafka/kafka_config.hpp"
#include "common/unique_fd.hpp"
#include "flowd/log.hpp"
#include "flowd/record_sink.hpp"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace flowd::kafka {

enum class Topic : std::uint8_t { kEvents, kRecords };
inline constexpr std::size_t kTopics = 2;

class Producer {
 public:
  Producer(const KafkaConfig& cfg, prometheus::Registry& metrics,
           std::shared_ptr<spdlog::logger> log);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Creates the librdkafka handle and topic handles. Connecting happens in librdkafka's own
  // threads: brokers that are down do not fail the start (messages wait in the bounded queue).
  // Throws std::runtime_error with librdkafka's message.
  void open();
  // Queues one message (key and payload copied). Thread-safe; never blocks. False when librdkafka
  // refused it (queue full, unknown topic, ...): counted as dropped (failed for an unknown topic),
  // the reason logged rate-limited.
  bool produce(Topic topic, std::string_view key, std::string_view payload) noexcept;
  // Queues a batch of messages (keys and payloads copied) with one call into librdkafka per up
  // to kBatchChunk messages (rd_kafka_produce_batch: the topic's lock taken once, not per
  // message; each message still gets librdkafka's one allocation). Thread-safe; never blocks.
  // Returns how many were queued; the others are counted and logged as produce() does.
  static constexpr std::size_t kBatchChunk = 128;
  std::size_t produce_batch(Topic topic, std::span<const RecordMessage> messages) noexcept;
  // librdkafka's statistics JSON (emitted every `statistics.interval.ms`, a librdkafka. property;
  // off by default) handed to `observer` on the serving thread. Before open(); for benchmarks.
  void on_statistics(std::function<void(std::string_view json)> observer) {
    stats_observer_ = std::move(observer);
  }
  // flowd_kafka_messages_total{topic, result="dropped"} of `topic` (null when it is not used), for
  // records dropped before they reached this producer (record_sinks.hpp).
  prometheus::Counter* dropped_counter(Topic topic) const {
    return counts_[static_cast<std::size_t>(topic)].dropped;
  }
  // Serves delivery reports and librdkafka's error events until `stop` is requested. One thread.
  void serve(std::stop_token stop);
  // Waits at most `timeout` for what is queued or in flight; what is left is purged and counted
  // as failed. After serve() returned (or instead of it).
  void flush(std::chrono::milliseconds timeout);

 private:
  struct Counts {
    prometheus::Counter* delivered = nullptr;
    prometheus::Counter* failed = nullptr;
    prometheus::Counter* dropped = nullptr;
  };
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque);
  static void on_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf);
  static int on_stats(rd_kafka_t*, char* json, size_t len, void* opaque);
  void refused(std::size_t t, rd_kafka_resp_err_t err, std::uint64_t n) noexcept;
  void delivered(const rd_kafka_message_t& m);
  void export_counts();
  void poll_all();
  std::size_t topic_index(const rd_kafka_topic_t* rkt) const;

  const KafkaConfig cfg_;
  std::shared_ptr<spdlog::logger> log_;
  std::array<Counts, kTopics> counts_{};
  std::array<std::string, kTopics> topic_names_;
  std::array<bool, kTopics> topic_used_{};
  // Delivery-report counts since the last export, by topic (the serving thread's).
  std::array<std::uint64_t, kTopics> pending_delivered_{}, pending_failed_{};
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* main_queue_ = nullptr;
  std::array<rd_kafka_topic_t*, kTopics> topics_{};
  UniqueFd wake_;  // eventfd written by librdkafka when its main queue has events
  std::function<void(std::string_view)> stats_observer_;
  LogLimiter produce_limiter_, delivery_limiter_, error_limiter_;
  // One line a minute: every message to the topic fails alike, and the count says how many.
  LogLimiter unknown_topic_limiter_{1, std::chrono::minutes(1)};
};

}  // namespace flowd::kafka
