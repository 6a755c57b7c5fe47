// SPDX-License-Identifier: Apache-2.0
// The Scitags registry (FLOW_MAP_API): experiment and activity names <-> ids.
// Immutable once built; shared between threads through RegistryHandle, which a reload swaps.
#pragma once

#include <atomic>
#include <chrono>
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

  // A name or a number. Numbers are always accepted (within range); names must be registered.
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
  std::chrono::system_clock::time_point loaded_at() const { return loaded_at_; }

 private:
  std::map<std::string, unsigned, std::less<>> by_name_;
  std::map<unsigned, Experiment> by_id_;
  std::string modified_;
  std::string source_;
  std::chrono::system_clock::time_point loaded_at_ = std::chrono::system_clock::now();
};

// Thread-safe holder of the current registry; readers take a snapshot per use.
class RegistryHandle {
 public:
  explicit RegistryHandle(std::shared_ptr<const ScitagsRegistry> r) : current_(std::move(r)) {}
  std::shared_ptr<const ScitagsRegistry> get() const { return current_.load(); }
  void set(std::shared_ptr<const ScitagsRegistry> r) { current_.store(std::move(r)); }

 private:
  std::atomic<std::shared_ptr<const ScitagsRegistry>> current_;
};

}  // namespace flowd
