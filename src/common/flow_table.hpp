// SPDX-License-Identifier: Apache-2.0
// FlowTable<Key, Value>: the one bounded per-flow table of flowd (start times and netlink state in
// udp_firefly, the prometheus backend's active flows and per-flow series, the netflow plugin's
// tracked flows).
//
// Bounded: at most `capacity` entries, ever. Memory is at most capacity * kBytesPerEntry plus the
// heap memory the values own (strings); the entries are allocated on demand, a chunk of
// kChunkNodes at a time, up to capacity (never beyond), and not given back until the table is
// destroyed.
//
// Why chunks and not one growing array: a growing array moves every entry when it doubles, and the
// thread that inserts stalls for all of them at once (56-100 ms for the 32,769th entry of a flow's
// size on the 2-vCPU VM; docs/benchmarks.md), and every table of the pipeline (arbiter, status,
// udp_firefly, prometheus, the explicit-flow check) doubles at the same flow. Chunks never move:
// an insertion costs at most one chunk's allocation, and the index's doubling re-places slots from
// the old index (8 bytes each, read in order) without touching the entries.
//
// Overflow policy: a new key in a full table evicts the OLDEST-INSERTED entry (emplace). Why
// insertion order and not LRU: an entry is written at a flow's start and read at its end, so
// recency of use is nearly insertion order anyway; LRU would turn every lookup into a write (a
// relink), on the per-event hot path, and let a flow's events keep a dead entry alive. Why evict
// rather than refuse: the tables without an idle timeout only lose entries when an end event
// arrives, so a start whose end is lost (a reporter restarted, a queue dropped it) stays forever;
// refusing would turn a few such leaks into a table that refuses every new flow for good, whereas
// evicting the oldest heals by itself and keeps the newest flows, the ones still likely to end
// here. An owner that must not lose an entry it already holds (the netflow tracker: it has an idle
// timeout, and evicting a live flow would publish an end that its next record contradicts) uses
// emplace_or_refuse instead and says why where it does.
//
// Every eviction or refusal is counted in overflow(); the owner exports it as a
// flowd_*_overflow_total counter.
//
// Lookup, insertion, erasure and eviction are O(1) on average: an open-addressing index (linear
// probing, load factor <= 1/2, backward-shift erasure, no tombstones) of 8-byte slots into a dense
// entry chunks, threaded by a doubly linked list in insertion order. No allocation per insertion
// once the chunks are there. A pointer returned by find or emplace stays valid until its entry is
// erased (or evicted, or the table cleared). Not thread-safe: each owner says which thread uses it
// (or locks).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

namespace flowd {

template <class Key, class Value, class Hash = std::hash<Key>, class Equal = std::equal_to<Key>>
class FlowTable {
  static constexpr std::uint32_t kNil = std::numeric_limits<std::uint32_t>::max();
  static constexpr unsigned kChunkBits = 6;
  static constexpr unsigned kShardBits = 6;

  struct Node {
    Key key{};
    Value value{};
    std::uint32_t tag = 0;  // the key's mixed hash: its home slot, and a cheap first comparison
    std::uint32_t prev = kNil, next = kNil;  // insertion order while live; `next` chains the free
  };
  struct Slot {
    std::uint32_t node = kNil;  // index of the entry (see at()); kNil = empty
    std::uint32_t tag = 0;
  };
  // One part of the index: the entries whose tag starts with its number. Each doubles on its own.
  struct Shard {
    std::vector<Slot> slots;  // a power of two, at least 16 once used
    unsigned shift = 32;      // 32 - log2(slots.size())
    std::uint32_t size = 0;
  };

 public:
  // A table of at least this capacity splits its index in 2^kShardBits shards.
  static constexpr std::size_t kShardedFrom = 16384;
  // Entries are allocated this many at a time (the last chunk only up to the capacity).
  static constexpr std::size_t kChunkNodes = std::size_t{1} << kChunkBits;
  // Upper bound of the table's own memory per entry, in bytes: one node, its share of the chunk
  // list, and the index at its worst load (1/4 full just after it doubled, so four slots per
  // entry, and the shards' first 16 slots each: under one byte an entry, as a sharded table holds
  // at least kShardedFrom entries).
  static constexpr std::size_t kBytesPerEntry = sizeof(Node) + 4 * sizeof(Slot) + 2;

  // capacity: 1 .. 2^31 entries (std::invalid_argument outside).
  explicit FlowTable(std::size_t capacity) : capacity_(capacity) {
    if (capacity == 0 || capacity > (std::size_t{1} << 31))
      throw std::invalid_argument("FlowTable capacity must be 1 .. 2^31");
    shard_bits_ = capacity >= kShardedFrom ? kShardBits : 0;
    shards_.resize(std::size_t{1} << shard_bits_);
  }

  // A copy is deep (a snapshot: the prometheus backend copies its table under its lock and reads
  // the copy while scraping); a move takes the chunks over.
  FlowTable(const FlowTable& o)
      : capacity_(o.capacity_),
        size_(o.size_),
        overflow_(o.overflow_),
        shard_bits_(o.shard_bits_),
        shards_(o.shards_),
        head_(o.head_),
        tail_(o.tail_),
        free_(o.free_),
        allocated_(o.allocated_),
        used_(o.used_) {
    chunks_.reserve(o.chunks_.size());
    for (std::size_t c = 0; c < o.chunks_.size(); ++c) {
      const std::size_t nodes = std::min(kChunkNodes, allocated_ - c * kChunkNodes);
      chunks_.push_back(std::make_unique<Node[]>(nodes));
      std::copy(o.chunks_[c].get(), o.chunks_[c].get() + nodes, chunks_.back().get());
    }
  }
  FlowTable& operator=(const FlowTable& o) {
    if (this != &o) {
      FlowTable copy(o);
      *this = std::move(copy);
    }
    return *this;
  }
  FlowTable(FlowTable&&) noexcept = default;
  FlowTable& operator=(FlowTable&&) noexcept = default;
  ~FlowTable() = default;

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ >= capacity_; }
  std::size_t capacity() const { return capacity_; }
  // The most memory this table itself can take (see kBytesPerEntry), in bytes.
  std::size_t max_bytes() const { return capacity_ * kBytesPerEntry; }
  // Entries evicted (emplace) or refused (emplace_or_refuse) because the table was full.
  std::uint64_t overflow() const { return overflow_; }

  Value* find(const Key& key) {
    std::uint32_t n = lookup(key, tag_of(key));
    return n == kNil ? nullptr : &at(n).value;
  }
  const Value* find(const Key& key) const {
    std::uint32_t n = lookup(key, tag_of(key));
    return n == kNil ? nullptr : &at(n).value;
  }
  bool contains(const Key& key) const { return find(key) != nullptr; }

  // The value of `key`, inserted as `value` if absent: {value, true if inserted}. A new key in a
  // full table first evicts the oldest-inserted entry: on_evict(const Key&, Value&) sees it just
  // before it goes (an owner that must undo something, e.g. a gauge, does it there).
  template <class OnEvict>
  std::pair<Value*, bool> emplace(const Key& key, Value value, OnEvict&& on_evict) {
    const std::uint32_t tag = tag_of(key);
    if (std::uint32_t n = lookup(key, tag); n != kNil) return {&at(n).value, false};
    if (full()) {
      ++overflow_;
      Node& old = at(head_);
      on_evict(static_cast<const Key&>(old.key), old.value);
      remove(head_);
    }
    return {&at(insert(key, tag, std::move(value))).value, true};
  }
  std::pair<Value*, bool> emplace(const Key& key, Value value) {
    return emplace(key, std::move(value), [](const Key&, Value&) {});
  }

  // As emplace, but a new key in a full table is refused (counted): {nullptr, false}.
  std::pair<Value*, bool> emplace_or_refuse(const Key& key, Value value) {
    const std::uint32_t tag = tag_of(key);
    if (std::uint32_t n = lookup(key, tag); n != kNil) return {&at(n).value, false};
    if (full()) {
      ++overflow_;
      return {nullptr, false};
    }
    return {&at(insert(key, tag, std::move(value))).value, true};
  }

  // Removes `key`: true if it was there.
  bool erase(const Key& key) {
    std::uint32_t n = lookup(key, tag_of(key));
    if (n == kNil) return false;
    remove(n);
    return true;
  }
  // Removes `key` and returns its value (one lookup where find + erase take two).
  std::optional<Value> extract(const Key& key) {
    std::uint32_t n = lookup(key, tag_of(key));
    if (n == kNil) return std::nullopt;
    std::optional<Value> v(std::move(at(n).value));
    remove(n);
    return v;
  }

  // f(const Key&, Value&) for every entry, oldest first. f must not insert or erase.
  template <class F>
  void for_each(F&& f) {
    for (std::uint32_t n = head_; n != kNil; n = at(n).next)
      f(static_cast<const Key&>(at(n).key), at(n).value);
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::uint32_t n = head_; n != kNil; n = at(n).next) f(at(n).key, at(n).value);
  }
  // Removes every entry for which pred(const Key&, Value&) is true, oldest first; returns how many.
  template <class Pred>
  std::size_t erase_if(Pred&& pred) {
    std::size_t erased = 0;
    for (std::uint32_t n = head_; n != kNil;) {
      std::uint32_t next = at(n).next;
      if (pred(static_cast<const Key&>(at(n).key), at(n).value)) {
        remove(n);
        ++erased;
      }
      n = next;
    }
    return erased;
  }

  // Removes every entry (the overflow count stays); keeps the index and the chunks for reuse.
  void clear() {
    for (auto& shard : shards_) {
      for (auto& s : shard.slots) s = Slot{};
      shard.size = 0;
    }
    for (std::uint32_t n = 0; n < used_; ++n) at(n) = Node{};  // releases what the values own
    used_ = 0;
    free_ = head_ = tail_ = kNil;
    size_ = 0;
  }

 private:
  // Fibonacci hashing on top of the key's hash: the top bits pick the slot, so a Hash with weak
  // low bits (std::hash of an integer is the identity) still spreads.
  static std::uint32_t tag_of(const Key& key) {
    return static_cast<std::uint32_t>(
        (static_cast<std::uint64_t>(Hash{}(key)) * 0x9E3779B97F4A7C15ULL) >> 32);
  }
  // The tag's top shard_bits_ pick the shard, the bits after them the home slot in it.
  Shard& shard_of(std::uint32_t tag) {
    return shards_[shard_bits_ ? tag >> (32 - shard_bits_) : 0];
  }
  const Shard& shard_of(std::uint32_t tag) const {
    return shards_[shard_bits_ ? tag >> (32 - shard_bits_) : 0];
  }
  std::size_t home(const Shard& sh, std::uint32_t tag) const {
    return static_cast<std::uint32_t>(tag << shard_bits_) >> sh.shift;
  }
  static std::size_t mask(const Shard& sh) { return sh.slots.size() - 1; }

  std::uint32_t lookup(const Key& key, std::uint32_t tag) const {
    const Shard& sh = shard_of(tag);
    if (sh.size == 0) return kNil;
    for (std::size_t i = home(sh, tag);; i = (i + 1) & mask(sh)) {
      const Slot& s = sh.slots[i];
      if (s.node == kNil) return kNil;
      if (s.tag == tag && Equal{}(at(s.node).key, key)) return s.node;
    }
  }

  std::uint32_t insert(const Key& key, std::uint32_t tag, Value&& value) {
    Shard& sh = shard_of(tag);
    if ((sh.size + 1) * 2 > sh.slots.size()) grow(sh);
    std::uint32_t n;
    if (free_ != kNil) {
      n = free_;
      free_ = at(n).next;
    } else {
      if (used_ == allocated_) add_chunk();
      n = used_++;
    }
    Node& node = at(n);
    node.key = key;
    node.value = std::move(value);
    node.tag = tag;
    node.prev = tail_;
    node.next = kNil;
    (tail_ == kNil ? head_ : at(tail_).next) = n;
    tail_ = n;
    place(sh, n, tag);
    ++sh.size;
    ++size_;
    return n;
  }

  void place(Shard& sh, std::uint32_t n, std::uint32_t tag) {
    std::size_t i = home(sh, tag);
    while (sh.slots[i].node != kNil) i = (i + 1) & mask(sh);
    sh.slots[i] = Slot{n, tag};
  }

  // Unlinks node n, frees its slot (backward shift: the probe chains stay gap-free without
  // tombstones) and puts it on the free list, its value reset so that what it owned is released.
  void remove(std::uint32_t n) {
    Node& node = at(n);
    Shard& sh = shard_of(node.tag);
    std::size_t i = home(sh, node.tag);
    while (sh.slots[i].node != n) i = (i + 1) & mask(sh);
    for (std::size_t j = (i + 1) & mask(sh); sh.slots[j].node != kNil; j = (j + 1) & mask(sh)) {
      const std::size_t k = home(sh, sh.slots[j].tag);
      // The entry at j may move back to i unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (stays) continue;
      sh.slots[i] = sh.slots[j];
      i = j;
    }
    sh.slots[i] = Slot{};
    --sh.size;
    (node.prev == kNil ? head_ : at(node.prev).next) = node.next;
    (node.next == kNil ? tail_ : at(node.next).prev) = node.prev;
    node.value = Value{};
    node.prev = kNil;
    node.next = free_;
    free_ = n;
    --size_;
  }

  // Entry n: its chunk, then its place in it.
  Node& at(std::uint32_t n) { return chunks_[n >> kChunkBits][n & (kChunkNodes - 1)]; }
  const Node& at(std::uint32_t n) const { return chunks_[n >> kChunkBits][n & (kChunkNodes - 1)]; }

  // One more chunk of entries, the last one cut to the capacity.
  void add_chunk() {
    const std::size_t nodes = std::min(kChunkNodes, capacity_ - allocated_);
    chunks_.push_back(std::make_unique<Node[]>(nodes));
    allocated_ += static_cast<std::uint32_t>(nodes);
  }

  // Doubles one shard of the index. The slots carry the tags, so they are re-placed from the old
  // slots read in order, not by walking the entries (a cache miss each). A shard holds about
  // 1/64 of a large table's entries, and the shards fill evenly, so their doublings are spread
  // over many insertions instead of one re-placing every entry.
  void grow(Shard& sh) {
    std::vector<Slot> old(std::max<std::size_t>(16, sh.slots.size() * 2));
    old.swap(sh.slots);
    sh.shift = 32;
    for (std::size_t s = sh.slots.size(); s > 1; s >>= 1) --sh.shift;
    for (const Slot& s : old)
      if (s.node != kNil) place(sh, s.node, s.tag);
  }

  std::size_t capacity_;
  std::size_t size_ = 0;
  std::uint64_t overflow_ = 0;
  unsigned shard_bits_ = 0;  // kShardBits for a table of kShardedFrom entries or more, else 0
  std::vector<Shard> shards_;
  std::uint32_t head_ = kNil, tail_ = kNil, free_ = kNil;
  std::uint32_t allocated_ = 0;  // entries in chunks_
  std::uint32_t used_ = 0;  // entries ever handed out since the last clear(); the rest are unused
  std::vector<std::unique_ptr<Node[]>> chunks_;  // kChunkNodes entries each; never moved
};

}  // namespace flowd
