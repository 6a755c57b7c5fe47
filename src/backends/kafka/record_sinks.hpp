// SPDX-License-Identifier: Apache-2.0
// The kafka backend's record sinks (flowd/record_sink.hpp), and how a reload hands records over
// from one backend instance to the next without losing any unseen.
//
// RecordsToKafka: each offered record becomes one message of records_topic, produced on the
// offering worker's own thread (librdkafka is thread-safe and produce() never blocks; a full queue
// drops and counts).
//
// HeldRecords: a stopping backend (a reload replaced its section) puts one in its sink's place
// before it flushes, which may take flush_timeout while the brokers are down; the collector plugins
// keep decoding meanwhile. It holds copies of what is offered, up to a bound (messages and bytes),
// and the successor's start() takes them and produces them; beyond the bound, or when no successor
// takes them (the reload removed the backend or set records = no), they are counted as
// flowd_kafka_messages_total{result="dropped"} and logged. Either way every record is delivered,
// failed or dropped, each counted; and when the hold is emptied (handed over) or discarded
// (abandoned), one line gives the totals: records held, handed to the successor, dropped and why.
//
// A worker may still hold the sink it loaded just before it was replaced: a replaced sink passes
// what it is then offered on to its replacement, so that nothing reaches a producer after its
// flush.
#pragma once

#include <prometheus/counter.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backends/kafka/kafka_producer.hpp"
#include "flowd/log.hpp"
#include "flowd/record_sink.hpp"

namespace flowd::kafka {

class RecordsToKafka final : public RecordSink {
 public:
  explicit RecordsToKafka(std::shared_ptr<Producer> p) : producer_(std::move(p)) {}
  void offer(std::span<const RecordMessage> records) noexcept override;
  // From now on what is offered goes to `next`; returns once no offer() is producing any more.
  void replace_by(std::shared_ptr<RecordSink> next);

 private:
  std::shared_ptr<Producer> producer_;
  std::shared_mutex mu_;  // offer() shared, replace_by() exclusive
  std::shared_ptr<RecordSink> next_;
};

class HeldRecords final : public RecordSink {
 public:
  // `dropped`: flowd_kafka_messages_total{topic=<records_topic>, result="dropped"} (the registry
  // outlives every backend instance). Holds at most `max_messages` records and `max_bytes` bytes of
  // keys and JSON.
  HeldRecords(prometheus::Counter* dropped, std::size_t max_messages, std::size_t max_bytes,
              std::shared_ptr<spdlog::logger> log);
  void offer(std::span<const RecordMessage> records) noexcept override;
  bool interim() const noexcept override { return true; }
  void abandon() noexcept override;

  // Gives what is held to `produce` (which returns how many it queued) and passes what is offered
  // afterwards to `next`; offers meanwhile wait, so that the held records go first. Returns
  // {held, queued}.
  std::pair<std::size_t, std::size_t> hand_over(
      std::shared_ptr<RecordSink> next,
      const std::function<std::size_t(std::span<const RecordMessage>)>& produce);

  // What became of the records offered while holding, at the hand-over or the abandon.
  struct Outcome {
    std::uint64_t held = 0;      // taken into the hold
    std::uint64_t full = 0;      // dropped when offered: the hold was full
    std::uint64_t handed = 0;    // held, given to the successor's producer
    std::uint64_t queued = 0;    // of those, queued by it (the rest it counted itself)
    std::uint64_t orphaned = 0;  // held, dropped: no successor took them
  };
  // The log line for `o`: "while the kafka backend was replaced, 3 records were decoded: 2 held,
  // 2 handed to its successor, 1 dropped (1 because the hold was full: at most 2 records and 64
  // MiB)".
  static std::string summary(const Outcome& o, std::size_t max_messages, std::size_t max_bytes);

 private:
  void drop(std::uint64_t n, const char* why) noexcept;
  void report(const Outcome& o) noexcept;

  prometheus::Counter* dropped_;
  const std::size_t max_messages_, max_bytes_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  std::vector<std::string> keys_, jsons_;
  std::size_t bytes_ = 0;
  std::uint64_t held_ = 0, over_ = 0;  // offered while holding: taken, dropped for want of room
  bool abandoned_ = false;
  std::shared_ptr<RecordSink> next_;
  LogLimiter limiter_;
};

}  // namespace flowd::kafka
