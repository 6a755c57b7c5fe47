// SPDX-License-Identifier: Apache-2.0
// Puts connections in output order within a bounded buffer. The pairer emits a connection when it
// closes, which is not its start order; sorting everything would need memory in proportion to the
// connections, so at most `capacity` are held:
//  - kStart: held in a heap by start; when full, the earliest is written. The output is exactly in
//    start order when no connection closes later than `capacity` others that started after it;
//    otherwise the late ones are written where they come and counted (`late`).
//  - kBytes: the `capacity` largest (octets both ways) are kept and written largest first at the
//  end;
//    smaller ones are dropped and counted (`dropped`): a "top N".
//  - kNone: written in closing order, in chunks, holding nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "analyze/connection_pairing.hpp"

namespace flowd::analyze {

enum class SortKey : std::uint8_t { kStart, kBytes, kNone };

struct OrderCounters {
  std::uint64_t late = 0;     // kStart: written out of start order because the buffer was full
  std::uint64_t dropped = 0;  // kBytes: not written, smaller than the `capacity` largest
  std::uint64_t written = 0;
};

class ConnectionOrder {
 public:
  // Receives connections in output order, a chunk at a time (the chunk may be modified).
  using Writer = std::function<void(std::vector<Connection>&)>;
  ConnectionOrder(SortKey key, std::size_t capacity, Writer writer);

  void add(Connection&& c);
  // Writes what is held (call once, at the end of the input).
  void finish();
  const OrderCounters& counters() const { return counters_; }

 private:
  void emit(Connection&& c);
  void flush_chunk();

  SortKey key_;
  std::size_t capacity_;
  Writer writer_;
  std::vector<Connection> held_;   // a heap (kStart: earliest on top; kBytes: smallest on top)
  std::vector<Connection> chunk_;  // ready to be written
  TimePoint last_start_{};
  bool wrote_any_ = false;
  OrderCounters counters_;
};

// Output order of two connections: by start (then end, then endpoints), or by bytes (largest first,
// then by start). Total, so that the output is deterministic.
bool earlier(const Connection& a, const Connection& b);
bool larger(const Connection& a, const Connection& b);

}  // namespace flowd::analyze
