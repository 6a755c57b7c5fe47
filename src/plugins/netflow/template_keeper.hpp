// SPDX-License-Identifier: Apache-2.0
// When the netflow plugin's UDP decoders save what they learnt to the template file and take it
// back (template_file.hpp, issue 16 §3): at start, before any worker runs; every
// template_save_interval on each worker's own tick (a decoder is only ever touched by its thread);
// and once more when every worker has stopped.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <array>

#include "collector/decoder.hpp"
#include "collector/decoder_snapshot.hpp"
#include "flowd/log.hpp"

namespace flowd::netflow {

class TemplateKeeper {
 public:
  // `path` empty: nothing is saved or taken back. `interval` 0: saved on stop only. `metrics`
  // (null: none) gets flowd_netflow_template_file_total{event}. `limits`: the decoders' bounds;
  // what is written is cut to their max_template_bytes, and a file larger than these bounds and
  // `workers` could have made is refused unread (max_template_file_bytes()).
  TemplateKeeper(std::string path, std::chrono::seconds interval, std::size_t workers,
                 const collector::DecoderLimits& limits, std::shared_ptr<spdlog::logger> log,
                 prometheus::Registry* metrics);

  bool enabled() const { return !path_.empty(); }
  // Gives every decoder (one per receive worker: the kernel may hash an exporter to any of them
  // after a restart) what the file holds; a missing file is quiet, a bad one a warning. Call before
  // the workers run.
  void restore(std::span<collector::Decoder* const> decoders, TimePoint now);
  // Worker `worker`'s timer: takes its decoder's snapshot when a save is due; worker 0 then writes
  // the file with every worker's latest snapshot.
  void tick(std::size_t worker, const collector::Decoder& decoder, TimePoint now);
  // Worker `worker` has stopped: its last snapshot.
  void last_snapshot(std::size_t worker, const collector::Decoder& decoder);
  // Writes the file from every worker's latest snapshot (on stop, once all workers are joined).
  void write();

 private:
  const std::string path_;
  const std::chrono::seconds interval_;
  const std::size_t max_template_bytes_, max_file_bytes_;
  std::shared_ptr<spdlog::logger> log_;
  std::mutex mu_;
  std::vector<collector::DecoderSnapshot> latest_;  // per worker
  std::vector<TimePoint> next_;                     // per worker, its own thread only
  LogLimiter limiter_;
  // What happened to the file and its entries: a closed set.
  enum Event : std::size_t {
    kSaved,
    kSaveFailed,
    kRefused,  // the file was there but unreadable, too large or not a flowd template file
    kRestored,
    kExpired,
    kInvalid,  // malformed, no export could define it, or over the bounds
    kEventCount
  };
  void count(Event e, double n = 1) {
    if (events_[e]) events_[e]->Increment(n);
  }
  std::array<prometheus::Counter*, kEventCount> events_{};
};

}  // namespace flowd::netflow
