// SPDX-License-Identifier: Apache-2.0
// The Scitags registry (FLOW_MAP_API): experiment and activity names <-> ids.
// Immutable once built; shared between threads through RegistryHandle, which a reload swaps.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace flowd {

class ScitagsRegistry {
 public:
  struct Experiment {
    std::string name;
    std::map<std::string, unsigned, std::less<>> activities;  // name -> id
    std::map<unsigned, std::string> activity_names;           // id -> name
  };

  // Parses the registry JSON (api.json). On failure returns nullptr and sets `error`.
  static std::shared_ptr<const ScitagsRegistry> parse(std::string_view json, std::string& error);

  // A name or a number. Numbers are always accepted (within range); names must be registered. A
  // name may write `_` for a space ("Data_Challenge"), as a pipe line does.
  std::optional<unsigned> experiment_id(std::string_view name_or_number) const;
  std::optional<unsigned> activity_id(unsigned experiment, std::string_view name_or_number) const;
  // Names for metric labels; the number as text when unregistered.
  std::string experiment_name(unsigned id) const;
  std::string activity_name(unsigned experiment, unsigned id) const;
  // Whether `activity` is registered for `experiment` (what makes an observed flow label a tag).
  bool registered(unsigned experiment, unsigned activity) const;
  // Every registered (experiment, activity) pair.
  std::size_t pair_count() const;

  std::size_t experiment_count() const { return by_id_.size(); }
  const std::string& modified() const { return modified_; }
  const std::string& source() const { return source_; }
  void set_source(std::string s) { source_ = std::move(s); }
  // When this registry was parsed, i.e. loaded by flowd (GET /v1/status: the registry's age).

 private:
  std::map<std::string, unsigned, std::less<>> by_name_;
  std::map<unsigned, Experiment> by_id_;
  std::string modified_;
  std::string source_;
};

// Thread-safe holder of the current registry; readers take a snapshot per use. It also keeps when
// the registry in use was last known current (its age: flowd_registry_age_seconds): the one place
// the daemon owns for "registry source and age" (the source is get()->source()).
class RegistryHandle {
 public:
  using Clock = std::chrono::system_clock;
  explicit RegistryHandle(std::shared_ptr<const ScitagsRegistry> r,
                          Clock::time_point current_at = Clock::now())
      : current_(std::move(r)) {
    confirm(current_at);
  }
  std::shared_ptr<const ScitagsRegistry> get() const { return current_.load(); }
  // `current_at`: when its content was fetched from (or confirmed by) its source.
  void set(std::shared_ptr<const ScitagsRegistry> r, Clock::time_point current_at = Clock::now()) {
    current_.store(std::move(r));
    confirm(current_at);
  }
  // Replaces `expected` by `r` only if `expected` is still the registry in use (a background
  // refresh must not undo what a reload installed meanwhile). True if replaced.
  bool replace(const std::shared_ptr<const ScitagsRegistry>& expected,
               std::shared_ptr<const ScitagsRegistry> r, Clock::time_point current_at) {
    auto e = expected;
    if (!current_.compare_exchange_strong(e, std::move(r))) return false;
    confirm(current_at);
    return true;
  }
  // The source said the registry in use is still current (HTTP 304, the same bytes).
  void confirm(Clock::time_point at) {
    current_at_ms_.store(
        std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count());
  }
  Clock::time_point current_at() const {
    return Clock::time_point(std::chrono::milliseconds(current_at_ms_.load()));
  }
  // Seconds since current_at() (never negative).
  double age_seconds(Clock::time_point now = Clock::now()) const {
    const auto d = std::chrono::duration<double>(now - current_at()).count();
    return d < 0 ? 0 : d;
  }

 private:
  std::atomic<std::shared_ptr<const ScitagsRegistry>> current_;
  std::atomic<std::int64_t> current_at_ms_{0};
};

}  // namespace flowd
