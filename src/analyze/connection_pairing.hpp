// SPDX-License-Identifier: Apache-2.0
// Pairs the two directions of a connection. Uni-directional records whose 5-tuples are each
// other's reverse (and records of the same direction: an exporter's active timeout splits a long
// flow) are merged while they keep coming within a time window; an RFC 5103 biflow record is
// already a pair. Streaming and bounded: an entry is emitted once no record for it has arrived for
// `window` (stream time), or early when `max_open` entries are open. Pure: no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "analyze/half_flow.hpp"

namespace flowd::analyze {

// How a connection's two directions were found.
enum class Pairing : std::uint8_t {
  kBiflow,    // an RFC 5103 biflow record (possibly several) holds both
  kMatched,   // uni-directional records of both directions, matched by reversed 5-tuple
  kUnpaired,  // records of one direction only
};
std::string_view to_string(Pairing p);

// One connection, oriented: `source` is the initiator as far as the records tell (the biflow's
// forward direction, else the direction that started first by the records' own times, else the one
// towards the lower port).
struct Connection {
  std::uint8_t protocol = 0;
  IpAddress source;
  IpAddress destination;
  std::uint16_t source_port = 0;
  std::uint16_t destination_port = 0;
  std::uint64_t octets = 0;  // source -> destination, summed over the records
  std::uint64_t packets = 0;
  std::uint64_t reverse_octets = 0;  // destination -> source
  std::uint64_t reverse_packets = 0;
  TimePoint start{};                           // earliest start of its records
  TimePoint end{};                             // latest end
  TimeSource time_source = TimeSource::kFlow;  // the worst of its records'
  Pairing pairing = Pairing::kUnpaired;
  bool evicted = false;          // emitted early because max_open entries were open
  std::uint32_t records = 0;     // flow records merged into it
  std::uint32_t flow_label = 0;  // the first non-zero flowLabelIPv6 seen; 0: none

  std::uint64_t total_octets() const { return octets + reverse_octets; }
};

struct PairingOptions {
  // Records of one connection must overlap in flow time within this, and an entry is closed once
  // no record for it has arrived for this long (arrival time: the stream's clock).
  std::chrono::nanoseconds window = std::chrono::seconds{60};
  // Open (not yet emitted) entries at most; the one closest to its deadline is emitted early.
  std::size_t max_open = 1'000'000;
};

struct PairingCounters {
  std::uint64_t records = 0;      // records added
  std::uint64_t connections = 0;  // connections emitted
  std::uint64_t biflow = 0;       // ...of which Pairing::kBiflow
  std::uint64_t matched = 0;      // ...Pairing::kMatched
  std::uint64_t unpaired = 0;     // ...Pairing::kUnpaired (left the window without the other side)
  std::uint64_t evicted = 0;      // ...emitted early because of max_open (any pairing)
  std::uint64_t split = 0;        // a record of an open 5-tuple too far in time: a new connection
};

class ConnectionPairer {
 public:
  using Sink = std::function<void(Connection&&)>;
  // `sink` receives each connection once, when it is closed (not in start-time order).
  ConnectionPairer(PairingOptions options, Sink sink);

  // Adds one record. `arrival` is when it was received (the dump's "time", the capture time), which
  // moves the stream clock forward; entries idle for longer than the window are emitted first.
  void add(const HalfFlow& flow, TimePoint arrival);
  // Emits every open entry (end of input).
  void flush();

  std::size_t open_count() const { return index_.size(); }
  const PairingCounters& counters() const { return counters_; }

 private:
  struct Endpoint {
    IpAddress address;
    std::uint16_t port = 0;
    bool operator==(const Endpoint&) const = default;
  };
  // The unordered 5-tuple: both directions of a connection have the same key.
  struct Key {
    std::uint8_t protocol = 0;
    Endpoint low, high;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct Direction {
    bool seen = false;
    bool biflow_forward = false;  // a biflow record said this direction is its forward one
    bool flow_timed = false;      // first_start comes from flow or observation elements
    TimePoint first_start{};
  };
  struct Entry {
    // Oriented a -> b until emitted, a being the first record's source (c.source): the key and
    // both endpoints are not stored twice, an open entry is most of analyze's memory.
    Connection c;
    Direction dir[2];  // a->b, b->a
    bool any_biflow = false;
    TimePoint last_arrival{};
    std::uint32_t generation = 0;
    bool live = false;
  };
  struct Deadline {
    TimePoint at;
    std::uint32_t slot;
    std::uint32_t generation;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };

  static Key key_of(std::uint8_t protocol, const Endpoint& x, const Endpoint& y);
  void expire(TimePoint now);
  void evict_one();
  void close(std::uint32_t slot);
  std::uint32_t open(const Key& key, const HalfFlow& flow, TimePoint arrival);
  void merge(Entry& e, const HalfFlow& flow, TimePoint arrival);
  void rebuild_heap();

  PairingOptions options_;
  Sink sink_;
  PairingCounters counters_;
  std::vector<Entry> slots_;
  std::vector<std::uint32_t> free_;
  std::unordered_map<Key, std::uint32_t, KeyHash> index_;
  // Each live entry has one item, whose time may be earlier than the entry's real deadline (it is
  // pushed again when popped early); closed entries leave stale items, told apart by generation.
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  TimePoint now_{};
};

}  // namespace flowd::analyze
