// SPDX-License-Identifier: Apache-2.0
#include "backends/kafka/kafka_producer.hpp"

#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "flowd/heartbeat.hpp"
#include "flowd/stop_fd.hpp"

namespace flowd::kafka {
namespace {

bool unknown_topic(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

// librdkafka's syslog-style levels: 0..3 error, 4 warning, 5..7 notice/info/debug.
spdlog::level::level_enum level_of(int syslog_level) {
  if (syslog_level <= 3) return spdlog::level::err;
  if (syslog_level == 4) return spdlog::level::warn;
  return spdlog::level::debug;
}

}  // namespace

Producer::Producer(const KafkaConfig& cfg, prometheus::Registry& metrics,
                   std::shared_ptr<spdlog::logger> log)
    : cfg_(cfg), log_(std::move(log)) {
  topic_names_ = {cfg_.topic, cfg_.records_topic};
  topic_used_ = {true, cfg_.records};
  auto& family = prometheus::BuildCounter()
                     .Name("flowd_kafka_messages_total")
                     .Help(
                         "Kafka messages by topic and result: delivered (the brokers acknowledged "
                         "it as `acks` asks), failed (librdkafka gave up on it: unknown topic, "
                         "timeout, not delivered within flush_timeout at stop), dropped (never "
                         "queued: librdkafka's queue was full)")
                     .Register(metrics);
  for (std::size_t t = 0; t < kTopics; ++t) {
    if (!topic_used_[t]) continue;
    counts_[t] = {&family.Add({{"topic", topic_names_[t]}, {"result", "delivered"}}),
                  &family.Add({{"topic", topic_names_[t]}, {"result", "failed"}}),
                  &family.Add({{"topic", topic_names_[t]}, {"result", "dropped"}})};
  }
}

Producer::~Producer() {
  for (auto*& t : topics_)
    if (t) rd_kafka_topic_destroy(std::exchange(t, nullptr));
  if (main_queue_) rd_kafka_queue_destroy(main_queue_);
  // Whatever flush() left was purged there; destroy does not wait for brokers that are down.
  if (rk_) rd_kafka_destroy_flags(rk_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

void Producer::open() {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [prop, value] : cfg_.properties)
    if (rd_kafka_conf_set(conf, prop.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("[backend.kafka] librdkafka refuses " + prop + ": " + err);
    }
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_dr_msg_cb(conf, &Producer::on_delivery);
  rd_kafka_conf_set_error_cb(conf, &Producer::on_error);
  rd_kafka_conf_set_log_cb(conf, &Producer::on_log);
  if (stats_observer_) rd_kafka_conf_set_stats_cb(conf, &Producer::on_stats);
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk_) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new owns it only when it succeeds
    throw std::runtime_error(std::string("[backend.kafka] cannot create the producer: ") + err);
  }
  for (std::size_t t = 0; t < kTopics; ++t) {
    if (!topic_used_[t]) continue;
    topics_[t] = rd_kafka_topic_new(rk_, topic_names_[t].c_str(), nullptr);
    if (!topics_[t])
      throw std::runtime_error("[backend.kafka] topic " + topic_names_[t] + ": " +
                               rd_kafka_err2str(rd_kafka_last_error()));
  }
  wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) throw std::system_error(errno, std::generic_category(), "eventfd");
  // librdkafka writes these 8 bytes (an eventfd increment of 1) when its main queue (delivery
  // reports, errors) becomes non-empty.
  static constexpr char kOne[8] = {1, 0, 0, 0, 0, 0, 0, 0};
  main_queue_ = rd_kafka_queue_get_main(rk_);
  rd_kafka_queue_io_event_enable(main_queue_, wake_.get(), kOne, sizeof kOne);
}

std::size_t Producer::topic_index(const rd_kafka_topic_t* rkt) const {
  for (std::size_t t = 0; t < kTopics; ++t)
    if (topics_[t] == rkt) return t;
  return 0;
}

bool Producer::produce(Topic topic, std::string_view key, std::string_view payload) noexcept {
  const auto t = static_cast<std::size_t>(topic);
  rd_kafka_topic_t* rkt = topics_[t];
  if (!rkt) return false;
  if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                       const_cast<char*>(payload.data()), payload.size(), key.data(), key.size(),
                       nullptr) == 0)
    return true;
  refused(t, rd_kafka_last_error(), 1);
  return false;
}

std::size_t Producer::produce_batch(Topic topic, std::span<const RecordMessage> messages) noexcept {
  const auto t = static_cast<std::size_t>(topic);
  rd_kafka_topic_t* rkt = topics_[t];
  if (!rkt) return 0;
  std::size_t queued = 0;
  std::array<rd_kafka_message_t, kBatchChunk> batch;
  while (!messages.empty()) {
    const std::size_t n = std::min(messages.size(), kBatchChunk);
    for (std::size_t i = 0; i < n; ++i) {
      rd_kafka_message_t& m = batch[i];
      m = rd_kafka_message_t{};
      m.payload = const_cast<char*>(messages[i].json.data());
      m.len = messages[i].json.size();
      m.key = const_cast<char*>(messages[i].key.data());
      m.key_len = messages[i].key.size();
    }
    const int ok = rd_kafka_produce_batch(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                          batch.data(), static_cast<int>(n));
    queued += static_cast<std::size_t>(ok);
    if (static_cast<std::size_t>(ok) < n) {
      // Count the refused ones: unknown topic (failed), anything else (dropped, the first
      // one's reason logged).
      rd_kafka_resp_err_t first_other = RD_KAFKA_RESP_ERR_NO_ERROR;
      std::uint64_t unknown = 0, other = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const rd_kafka_resp_err_t e = batch[i].err;
        if (!e) continue;
        if (unknown_topic(e)) {
          ++unknown;
        } else {
          if (!other++) first_other = e;
        }
      }
      if (unknown) refused(t, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, unknown);
      if (other) refused(t, first_other, other);
    }
    messages = messages.subspan(n);
  }
  return queued;
}

void Producer::refused(std::size_t t, rd_kafka_resp_err_t err, std::uint64_t n) noexcept {
  try {
    if (unknown_topic(err)) {
      counts_[t].failed->Increment(static_cast<double>(n));
      limited_log(*log_, unknown_topic_limiter_, spdlog::level::err,
                  "topic '{}' does not exist on the Kafka cluster at {} (and the brokers do not "
                  "create topics): its messages fail; create the topic or set another",
                  topic_names_[t], cfg_.brokers);
    } else {
      counts_[t].dropped->Increment(static_cast<double>(n));
      limited_warn(*log_, produce_limiter_, "message to topic '{}' dropped: {}{}", topic_names_[t],
                   rd_kafka_err2str(err),
                   err == RD_KAFKA_RESP_ERR__QUEUE_FULL
                       ? " (queue_buffering_max_messages reached: the brokers are down or slow)"
                       : "");
    }
  } catch (...) {  // logging must not end a receive worker
  }
}

int Producer::on_stats(rd_kafka_t*, char* json, size_t len, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (self->stats_observer_) self->stats_observer_(std::string_view(json, len));
  return 0;  // librdkafka frees the JSON
}

void Producer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  static_cast<Producer*>(opaque)->delivered(*m);
}

void Producer::delivered(const rd_kafka_message_t& m) {
  const std::size_t t = topic_index(m.rkt);
  if (!m.err) {
    ++pending_delivered_[t];
    return;
  }
  ++pending_failed_[t];
  if (unknown_topic(m.err))
    limited_log(*log_, unknown_topic_limiter_, spdlog::level::err,
                "topic '{}' does not exist on the Kafka cluster at {} (and the brokers do not "
                "create topics): its messages fail; create the topic or set another",
                topic_names_[t], cfg_.brokers);
  else if (m.err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m.err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
    // Purged ones are the stop's flush_timeout running out: one line at stop says how many.
    limited_warn(*log_, delivery_limiter_, "message to topic '{}' not delivered: {}",
                 topic_names_[t], rd_kafka_err2str(m.err));
}

void Producer::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  auto e = static_cast<rd_kafka_resp_err_t>(err);
  if (rd_kafka_fatal_error(rk, nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
    self->log_->error("Kafka producer: fatal error: {}", reason);
  else
    limited_warn(*self->log_, self->error_limiter_, "Kafka: {} ({})", reason, rd_kafka_err2name(e));
}

void Producer::on_log(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  auto* self = static_cast<Producer*>(rd_kafka_opaque(rk));
  if (!self) return;
  const auto lvl = level_of(level);
  // A broker connection's failure (facility FAIL) also reaches on_error(), which logs it: once is
  // enough at the operator's level.
  if (lvl == spdlog::level::debug || std::strcmp(fac, "FAIL") == 0)
    self->log_->debug("librdkafka {}: {}", fac, buf);
  else
    limited_log(*self->log_, self->error_limiter_, lvl, "librdkafka {}: {}", fac, buf);
}

void Producer::export_counts() {
  for (std::size_t t = 0; t < kTopics; ++t) {
    if (!topic_used_[t]) continue;
    if (auto n = std::exchange(pending_delivered_[t], 0))
      counts_[t].delivered->Increment(static_cast<double>(n));
    if (auto n = std::exchange(pending_failed_[t], 0))
      counts_[t].failed->Increment(static_cast<double>(n));
  }
}

void Producer::poll_all() {
  std::uint64_t drained = 0;
  [[maybe_unused]] auto n = ::read(wake_.get(), &drained, sizeof drained);
  // The eventfd is written once per wake-up; serve until the queue is empty so none is missed.
  while (rd_kafka_poll(rk_, 0) > 0) {
  }
  export_counts();
}

void Producer::serve(std::stop_token stop) {
  StopFd stop_fd(stop);
  pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {stop_fd.fd(), POLLIN, 0}};
  poll_all();
  while (!stop.stop_requested()) {
    int r;
    {
      WaitingScope waiting;
      r = ::poll(fds, 2, -1);
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "kafka: poll");
    }
    if (fds[0].revents) poll_all();
  }
  poll_all();
}

void Producer::flush(std::chrono::milliseconds timeout) {
  if (!rk_) return;
  const int queued = rd_kafka_outq_len(rk_);
  // Said before the wait, which may last flush_timeout (the brokers down): a reload pauses here.
  if (queued > 0)
    log_->info("flushing {} queued Kafka message(s), for at most flush_timeout {} ms", queued,
               timeout.count());
  if (rd_kafka_flush(rk_, static_cast<int>(timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const int left = rd_kafka_outq_len(rk_);
    log_->warn("{} Kafka message(s) not delivered within flush_timeout {} ms; counted as failed",
               left, timeout.count());
    // Their delivery reports (ERR__PURGE_QUEUE / _INFLIGHT) count them as failed.
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk_, 100);
  } else if (queued > 0) {
    log_->info("flushed {} queued Kafka message(s)", queued);
  }
  while (rd_kafka_poll(rk_, 0) > 0) {
  }
  export_counts();
}

}  // namespace flowd::kafka
