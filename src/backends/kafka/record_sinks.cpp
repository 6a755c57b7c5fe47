// SPDX-License-Identifier: Apache-2.0
#include "backends/kafka/record_sinks.hpp"

namespace flowd::kafka {

void RecordsToKafka::offer(std::span<const RecordMessage> records) noexcept {
  std::shared_lock lock(mu_);
  if (next_) {
    next_->offer(records);
    return;
  }
  producer_->produce_batch(Topic::kRecords, records);
}

void RecordsToKafka::replace_by(std::shared_ptr<RecordSink> next) {
  std::unique_lock lock(mu_);
  next_ = std::move(next);
}

HeldRecords::HeldRecords(prometheus::Counter* dropped, std::size_t max_messages,
                         std::size_t max_bytes, std::shared_ptr<spdlog::logger> log)
    : dropped_(dropped), max_messages_(max_messages), max_bytes_(max_bytes), log_(std::move(log)) {}

void HeldRecords::offer(std::span<const RecordMessage> records) noexcept {
  std::shared_ptr<RecordSink> next;
  std::uint64_t over = 0;
  bool abandoned = false;
  {
    std::lock_guard lock(mu_);
    next = next_;
    abandoned = abandoned_;
    if (!next && !abandoned) {
      for (const auto& r : records) {
        const std::size_t size = r.key.size() + r.json.size();
        if (keys_.size() >= max_messages_ || bytes_ + size > max_bytes_) {
          ++over;
          continue;
        }
        try {
          keys_.emplace_back(r.key);
          jsons_.emplace_back(r.json);
        } catch (...) {  // out of memory: counted as dropped, like a full queue
          if (keys_.size() > jsons_.size()) keys_.pop_back();
          ++over;
          continue;
        }
        bytes_ += size;
      }
    }
  }
  if (next) return next->offer(records);
  if (abandoned) return drop(records.size(), "the kafka backend is gone");
  if (over) drop(over, "the kafka backend is being replaced and holds no more");
}

void HeldRecords::abandon() noexcept {
  std::size_t n = 0;
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    n = keys_.size();
    keys_ = {};
    jsons_ = {};
    bytes_ = 0;
  }
  if (n) drop(n, "no kafka backend with records = yes followed the reload");
}

std::pair<std::size_t, std::size_t> HeldRecords::hand_over(
    std::shared_ptr<RecordSink> next,
    const std::function<std::size_t(std::span<const RecordMessage>)>& produce) {
  std::lock_guard lock(mu_);
  std::vector<RecordMessage> msgs(keys_.size());
  for (std::size_t i = 0; i < msgs.size(); ++i) msgs[i] = {keys_[i], jsons_[i]};
  const std::size_t queued = msgs.empty() ? 0 : produce(msgs);
  next_ = std::move(next);
  keys_ = {};
  jsons_ = {};
  bytes_ = 0;
  return {msgs.size(), queued};
}

void HeldRecords::drop(std::uint64_t n, const char* why) noexcept {
  try {
    if (dropped_) dropped_->Increment(static_cast<double>(n));
    limited_warn(*log_, limiter_, "{} decoded record(s) dropped: {}", n, why);
  } catch (...) {  // logging must not end a receive worker
  }
}

}  // namespace flowd::kafka
