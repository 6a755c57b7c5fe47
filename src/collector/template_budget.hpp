// SPDX-License-Identifier: Apache-2.0
// The bytes that templates may hold, per exporter address and in total, shared by every decoder
// of one collector: the receive workers' and each IPFIX-over-TCP session's, possibly on different
// threads. A ledger of who holds what, oldest first, that evicts the least recently defined or
// refreshed templates to make room for a new one (issue 13: 2,000 IPFIX templates of 16,000
// fields each held 500 MiB, and a bound per address and port was multiplied by changing ports).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/template_store.hpp"

namespace flowd::collector {

struct TemplateBounds {
  std::size_t per_exporter = 4 << 20;  // bytes; every port and TCP session of one address
  std::size_t total = 64 << 20;        // bytes; every exporter (raised to per_exporter if lower)
};

// What one stored template costs, in bytes: its node in the store's map (key, Template, the
// node's links: 4 pointers), its field specifiers and raw record bytes as allocated (capacity, not
// size), and the budget's own bookkeeping for it (its entries in the ledger's three maps/sets).
// Allocator headers and the store's per-exporter count map are not counted.
std::size_t template_bytes(const Template& t);

// Thread-safe. A TemplateStore joins as an owner and charges each template it stores. When a
// charge does not fit, the oldest templates (least recently defined or refreshed: a resend with
// unchanged bytes counts as use, a data record does not, so that decoding takes no lock) are
// evicted: first the same exporter address's while it is over its bound, then anyone's while the
// total is. An evicted template of the charging owner is returned to it to erase at once; one of
// another owner (another thread's) is queued for that owner, which erases it at its next store()
// or expire() (each receive worker's tick), so memory exceeds the ledger only by templates evicted
// since their owner's last tick.
class TemplateBudget {
 public:
  using Owner = std::uint64_t;

  explicit TemplateBudget(TemplateBounds bounds);
  TemplateBudget(const TemplateBudget&) = delete;
  TemplateBudget& operator=(const TemplateBudget&) = delete;

  const TemplateBounds& bounds() const { return bounds_; }
  std::size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  std::size_t exporter_bytes(const IpAddress& address) const;  // every port and session of it
  std::size_t count() const;                                   // templates charged

  Owner join();
  // Releases everything `owner` holds or was told to erase (a store going away).
  void leave(Owner owner);

  // Charges `bytes` for `key` of `owner`, replacing what the key held before (a redefinition),
  // after evicting what must go. False when `bytes` alone exceed the per-exporter bound: nothing
  // is evicted, the old definition is released, and kTooLarge is counted in `result`. Evictions
  // are counted in `result` (and the evicted exporter noted); `mine` receives the keys of
  // `owner` to erase now (evicted by this charge, or by another owner's since the last call).
  bool charge(Owner owner, const TemplateKey& key, std::size_t bytes, DecodeResult& result,
              std::vector<TemplateKey>& mine);
  // Makes `key` the most recently used (a refresh).
  void touch(Owner owner, const TemplateKey& key);
  void release(Owner owner, const TemplateKey& key);
  // The keys of `owner` that other owners' charges evicted since the last call: to be erased.
  std::vector<TemplateKey> take_evicted(Owner owner);

 private:
  using Slot = std::pair<Owner, TemplateKey>;
  struct Entry {
    std::size_t bytes = 0;
    std::uint64_t stamp = 0;
  };
  struct Address {
    std::size_t bytes = 0;
    std::set<std::uint64_t> stamps;  // its templates, oldest first
  };
  static ExporterKey address_of(const TemplateKey& key);
  // Removes one entry from every index; lock held.
  void drop(std::map<Slot, Entry>::iterator it);
  void evict(std::uint64_t stamp, Owner charging, TemplateEviction why, DecodeResult& result,
             std::vector<TemplateKey>& mine);

  const TemplateBounds bounds_;
  mutable std::mutex mu_;
  std::map<Slot, Entry> entries_;
  std::map<std::uint64_t, Slot> order_;       // by stamp: least recently defined or refreshed first
  std::map<ExporterKey, Address> addresses_;  // port 0
  std::map<Owner, std::vector<TemplateKey>> evicted_;  // for owners other than the evicting one
  std::uint64_t next_stamp_ = 0;
  Owner next_owner_ = 0;
  std::atomic<std::size_t> bytes_{0};  // the sum of entries_' bytes, read by scrapes
};

}  // namespace flowd::collector
