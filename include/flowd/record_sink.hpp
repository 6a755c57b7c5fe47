// SPDX-License-Identifier: Apache-2.0
// Decoded collector records leaving the process (the kafka backend's `records = yes`): a path
// beside the flow-event bus, not on it. A router's export yields tens of thousands of records a
// second, ~100× the flow events, each a different shape (every field of the template); copying
// them into FlowIDs and through one EventQueue per backend would cost every backend a copy of
// each and hand the kafka backend a queue of its own to drain. Instead a collector worker writes
// each record's JSON once and hands the batch straight to the sink, on its own thread; the sink is
// bounded and counts what it drops (the kafka backend: librdkafka's queue,
// queue_buffering_max_messages, and flowd_kafka_messages_total{result="dropped"}), so a slow
// consumer never stalls a receive worker.
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <string_view>

namespace flowd {

// One decoded record: its JSON (collector/record_json.hpp, the `flowd decode` form) and a key
// (the exporter, "ip:port"), both only valid during offer().
struct RecordMessage {
  std::string_view key;
  std::string_view json;
};

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Takes one batch (copying what it keeps). Never blocks: what it cannot take now it drops and
  // counts. Thread-safe: several receive workers offer at once.
  virtual void offer(std::span<const RecordMessage> records) noexcept = 0;
  // An interim sink holds what is offered while its backend is being replaced (a reload), for the
  // successor to take. When no successor takes it (the reload removed the backend or its
  // records), the core abandons it: it counts what it held as lost and holds nothing more.
  virtual bool interim() const noexcept { return false; }
  virtual void abandon() noexcept {}
};

// Where collector plugins find the sink, lent to every component through Context::records (made
// by the core; null in unit tests). A backend attaches its sink in start() and detaches it in
// stop() (or, stopping for a reload, puts an interim sink in its place that holds the records
// decoded meanwhile for its successor: nothing is lost unseen while it flushes); a plugin loads it
// once per batch (one atomic load) and, while it is null, does not even write the JSON. The
// shared_ptr keeps a sink a worker holds alive until its offer() returns, whatever the backend does
// meanwhile (a reload replaces it).
class RecordTap {
 public:
  void attach(std::shared_ptr<RecordSink> sink) { sink_.store(std::move(sink)); }
  // Detaches `sink` only if it is still the one attached (a successor may have replaced it).
  void detach(const RecordSink* sink) {
    auto cur = sink_.load();
    if (cur.get() == sink) sink_.compare_exchange_strong(cur, nullptr);
  }
  std::shared_ptr<RecordSink> sink() const { return sink_.load(); }
  // Attaches `sink` and returns the one it replaces (a stopping predecessor's interim sink).
  std::shared_ptr<RecordSink> replace(std::shared_ptr<RecordSink> sink) {
    return sink_.exchange(std::move(sink));
  }
  // Replaces `current` by `next` only if `current` is still the one attached.
  bool replace_if(const RecordSink* current, std::shared_ptr<RecordSink> next) {
    auto cur = sink_.load();
    return cur.get() == current && sink_.compare_exchange_strong(cur, std::move(next));
  }
  // Once a reload (or the stop) is done: an interim sink no successor took is detached and
  // abandoned.
  void settle() {
    auto cur = sink_.load();
    if (cur && cur->interim() && sink_.compare_exchange_strong(cur, nullptr)) cur->abandon();
  }

 private:
  std::atomic<std::shared_ptr<RecordSink>> sink_;
};

}  // namespace flowd
