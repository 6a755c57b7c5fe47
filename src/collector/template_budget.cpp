// SPDX-License-Identifier: Apache-2.0
#include "collector/template_budget.hpp"

#include <algorithm>

namespace flowd::collector {
namespace {

// A red-black tree node: three links and the colour, before the value.
constexpr std::size_t kNodeBytes = 4 * sizeof(void*);
// The ledger's share of one template: its entry (Slot -> Entry), its place in the order (stamp ->
// Slot) and in its address's set of stamps.
constexpr std::size_t kLedgerBytes = 3 * kNodeBytes +
                                     2 * (sizeof(std::uint64_t) + sizeof(TemplateKey)) +
                                     2 * sizeof(std::size_t) + 2 * sizeof(std::uint64_t);

}  // namespace

std::size_t template_bytes(const Template& t) {
  return kNodeBytes + sizeof(TemplateKey) + sizeof(Template) +
         t.fields.capacity() * sizeof(FieldSpec) + t.raw.capacity() + kLedgerBytes;
}

std::string_view to_string(TemplateEviction e) {
  return e == TemplateEviction::kExporterBytes ? "exporter_bytes" : "total_bytes";
}

std::string_view to_string(TemplateRefusal r) {
  return r == TemplateRefusal::kTooLarge ? "too_large" : "max_templates";
}

// One exporter's bound must fit in the total, or a template that fits its exporter could be refused
// with nothing left to evict.
TemplateBudget::TemplateBudget(TemplateBounds bounds)
    : bounds_{bounds.per_exporter, std::max(bounds.total, bounds.per_exporter)} {}

ExporterKey TemplateBudget::address_of(const TemplateKey& key) {
  ExporterKey a = key.exporter;
  a.port = 0;
  return a;
}

std::size_t TemplateBudget::exporter_bytes(const IpAddress& address) const {
  ExporterKey a;
  a.family = address.family;
  a.addr = address.bytes;
  std::lock_guard lock(mu_);
  auto it = addresses_.find(a);
  return it == addresses_.end() ? 0 : it->second.bytes;
}

std::size_t TemplateBudget::count() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

TemplateBudget::Owner TemplateBudget::join() {
  std::lock_guard lock(mu_);
  return next_owner_++;
}

void TemplateBudget::leave(Owner owner) {
  std::lock_guard lock(mu_);
  evicted_.erase(owner);
  auto it = entries_.lower_bound(Slot{owner, TemplateKey{}});
  while (it != entries_.end() && it->first.first == owner) drop(it++);
}

void TemplateBudget::drop(std::map<Slot, Entry>::iterator it) {
  const auto a = addresses_.find(address_of(it->first.second));
  if (a != addresses_.end()) {
    a->second.bytes -= it->second.bytes;
    a->second.stamps.erase(it->second.stamp);
    if (a->second.stamps.empty()) addresses_.erase(a);
  }
  order_.erase(it->second.stamp);
  bytes_.fetch_sub(it->second.bytes, std::memory_order_relaxed);
  entries_.erase(it);
}

void TemplateBudget::evict(std::uint64_t stamp, Owner charging, TemplateEviction why,
                           DecodeResult& result, std::vector<TemplateKey>& mine) {
  const Slot slot = order_.at(stamp);
  drop(entries_.find(slot));
  if (slot.first == charging)
    mine.push_back(slot.second);
  else
    evicted_[slot.first].push_back(slot.second);
  ++result.templates_evicted[static_cast<std::size_t>(why)];
  result.evicted_from.family = slot.second.exporter.family;
  result.evicted_from.bytes = slot.second.exporter.addr;
}

bool TemplateBudget::charge(Owner owner, const TemplateKey& key, std::size_t bytes,
                            DecodeResult& result, std::vector<TemplateKey>& mine) {
  std::lock_guard lock(mu_);
  if (auto queued = evicted_.find(owner); queued != evicted_.end()) {
    mine.insert(mine.end(), queued->second.begin(), queued->second.end());
    evicted_.erase(queued);
  }
  if (auto old = entries_.find(Slot{owner, key}); old != entries_.end()) drop(old);
  if (bytes > bounds_.per_exporter) {
    ++result.templates_refused[static_cast<std::size_t>(TemplateRefusal::kTooLarge)];
    return false;
  }
  const ExporterKey address = address_of(key);
  for (auto a = addresses_.find(address);
       a != addresses_.end() && a->second.bytes + bytes > bounds_.per_exporter;
       a = addresses_.find(address))
    evict(*a->second.stamps.begin(), owner, TemplateEviction::kExporterBytes, result, mine);
  while (!order_.empty() && bytes_.load(std::memory_order_relaxed) + bytes > bounds_.total)
    evict(order_.begin()->first, owner, TemplateEviction::kTotalBytes, result, mine);
  const std::uint64_t stamp = next_stamp_++;
  entries_.emplace(Slot{owner, key}, Entry{bytes, stamp});
  order_.emplace(stamp, Slot{owner, key});
  Address& a = addresses_[address];
  a.bytes += bytes;
  a.stamps.insert(stamp);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  return true;
}

void TemplateBudget::touch(Owner owner, const TemplateKey& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(Slot{owner, key});
  if (it == entries_.end()) return;
  const std::uint64_t stamp = next_stamp_++;
  order_.erase(it->second.stamp);
  order_.emplace(stamp, it->first);
  auto& stamps = addresses_.at(address_of(key)).stamps;
  stamps.erase(it->second.stamp);
  stamps.insert(stamp);
  it->second.stamp = stamp;
}

void TemplateBudget::release(Owner owner, const TemplateKey& key) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(Slot{owner, key}); it != entries_.end()) drop(it);
}

std::vector<TemplateKey> TemplateBudget::take_evicted(Owner owner) {
  std::lock_guard lock(mu_);
  auto it = evicted_.find(owner);
  if (it == evicted_.end()) return {};
  std::vector<TemplateKey> keys = std::move(it->second);
  evicted_.erase(it);
  return keys;
}

}  // namespace flowd::collector
