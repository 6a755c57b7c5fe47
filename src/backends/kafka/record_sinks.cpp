// SPDX-License-Identifier: Apache-2.0
#include "backends/kafka/record_sinks.hpp"

#include <fmt/format.h>

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
        ++held_;
      }
      over_ += over;
    }
  }
  if (next) return next->offer(records);
  if (abandoned) return drop(records.size(), "the kafka backend is gone");
  if (over) drop(over, "the kafka backend is being replaced and holds no more");
}

void HeldRecords::abandon() noexcept {
  Outcome o;
  {
    std::lock_guard lock(mu_);
    abandoned_ = true;
    o.held = held_;
    o.full = over_;
    o.orphaned = keys_.size();
    keys_ = {};
    jsons_ = {};
    bytes_ = 0;
  }
  try {
    if (dropped_ && o.orphaned) dropped_->Increment(static_cast<double>(o.orphaned));
  } catch (...) {
  }
  report(o);
}

std::pair<std::size_t, std::size_t> HeldRecords::hand_over(
    std::shared_ptr<RecordSink> next,
    const std::function<std::size_t(std::span<const RecordMessage>)>& produce) {
  Outcome o;
  {
    std::lock_guard lock(mu_);
    std::vector<RecordMessage> msgs(keys_.size());
    for (std::size_t i = 0; i < msgs.size(); ++i) msgs[i] = {keys_[i], jsons_[i]};
    o.queued = msgs.empty() ? 0 : produce(msgs);
    o.handed = msgs.size();
    o.held = held_;
    o.full = over_;
    next_ = std::move(next);
    keys_ = {};
    jsons_ = {};
    bytes_ = 0;
  }
  report(o);
  return {o.handed, o.queued};
}

std::string HeldRecords::summary(const Outcome& o, std::size_t max_messages,
                                 std::size_t max_bytes) {
  const std::uint64_t offered = o.held + o.full;
  const std::uint64_t dropped = o.full + o.orphaned;
  std::string s = fmt::format(
      "while the kafka backend was replaced, {} {} decoded: {} held, {} handed to its successor",
      offered, offered == 1 ? "record was" : "records were", o.held, o.handed);
  if (o.handed > o.queued)
    s += fmt::format(" ({} queued, {} refused by its queue and counted as dropped or failed)",
                     o.queued, o.handed - o.queued);
  s += fmt::format(", {} dropped", dropped);
  std::string why;
  if (o.full)
    why = fmt::format("{} because the hold was full: at most {} {} and {} MiB", o.full,
                      max_messages, max_messages == 1 ? "record" : "records", max_bytes >> 20);
  if (o.orphaned)
    why += fmt::format("{}{} because no kafka backend with records = yes followed the reload",
                       why.empty() ? "" : "; ", o.orphaned);
  if (!why.empty()) s += " (" + why + ")";
  return s;
}

void HeldRecords::report(const Outcome& o) noexcept {
  if (o.held + o.full == 0) return;  // nothing came meanwhile: nothing to say
  try {
    const std::string line = summary(o, max_messages_, max_bytes_);
    if (o.full + o.orphaned)
      log_->warn("{}", line);
    else
      log_->info("{}", line);
  } catch (...) {  // logging must not end the reload
  }
}

void HeldRecords::drop(std::uint64_t n, const char* why) noexcept {
  try {
    if (dropped_) dropped_->Increment(static_cast<double>(n));
    limited_warn(*log_, limiter_, "{} decoded record(s) dropped: {}", n, why);
  } catch (...) {  // logging must not end a receive worker
  }
}

}  // namespace flowd::kafka
