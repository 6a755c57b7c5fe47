// SPDX-License-Identifier: Apache-2.0
// The named-pipe protocol: "state prot src_ip src_port dst_ip dst_port exp act", one flow per line.
// Pure functions: no I/O, no logging; fuzzed by tests/fuzz/pipe_line_fuzz.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::np_api {

enum class RejectReason : std::uint8_t {
  kFields,      // not exactly 8 fields
  kState,       // not start/end/ongoing
  kProtocol,    // not tcp/udp
  kAddress,     // not an IPv4/IPv6 address, or the unspecified one (0.0.0.0, ::, ::ffff:0.0.0.0)
  kFamily,      // source and destination of different families
  kPort,        // not an integer 0..65535
  kExperiment,  // not 0..511 or a registered experiment name
  kActivity,    // not 0..63 or an activity name of that experiment
  kTooLong,     // longer than the line limit
  kBinary,      // control characters or non-ASCII bytes
  kTruncated,   // a writer went away mid-line: the partial line was discarded
};
inline constexpr std::size_t kRejectReasonCount = 11;
std::string_view to_string(RejectReason r);

struct LineResult {
  bool ok = false;
  FlowID flow;
  RejectReason reason = RejectReason::kFields;
  std::string detail;  // what was wrong, for the log line
};

// `now` stamps start_time (start) or end_time (end).
LineResult parse_pipe_line(std::string_view line, const ScitagsRegistry& registry, TimePoint now);

// True when `line` has the np_api line's shape (printable ASCII, 8 fields, the first a state),
// whether or not its names are registered: how a file of lines a writer left at the pipe's path is
// recognised.
bool has_pipe_line_syntax(std::string_view line);

// A line that failed may be the tail of a partial line from a writer that went away, glued to a
// whole line from the next writer. Returns the offset of a valid line inside it, or npos.
std::size_t find_embedded_line(std::string_view line, const ScitagsRegistry& registry);

// Splits a byte stream into lines, whatever the read boundaries. Lines longer than `max_line`
// are reported once with overflowed=true and their last `max_line` bytes.
class LineAssembler {
 public:
  explicit LineAssembler(std::size_t max_line) : max_line_(max_line) {}

  template <class F>
  void feed(std::string_view data, F&& on_line) {
    while (!data.empty()) {
      auto nl = data.find('\n');
      auto chunk = data.substr(0, nl);
      append(chunk);
      if (nl == std::string_view::npos) break;
      on_line(std::string_view(buf_), overflowed_);
      buf_.clear();
      overflowed_ = false;
      data.remove_prefix(nl + 1);
    }
  }
  bool has_partial() const { return !buf_.empty() || overflowed_; }
  bool overflowed() const { return overflowed_; }
  // Hands the partial line over (to the instance that replaces this one at a reload) and forgets
  // it.
  std::string take_partial() {
    overflowed_ = false;
    return std::exchange(buf_, {});
  }
  // Drops a partial line; returns true if there was one.
  bool drop_partial() {
    bool had = has_partial();
    buf_.clear();
    overflowed_ = false;
    return had;
  }

 private:
  void append(std::string_view chunk) {
    buf_.append(chunk);
    if (buf_.size() > max_line_) {
      // Keep only the tail: it may hold the start of a good line written after garbage.
      buf_.erase(0, buf_.size() - max_line_);
      overflowed_ = true;
    }
  }
  std::size_t max_line_;
  std::string buf_;
  bool overflowed_ = false;
};

}  // namespace flowd::np_api
