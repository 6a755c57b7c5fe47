// SPDX-License-Identifier: Apache-2.0
#include "analyze/connection_order.hpp"

#include <algorithm>
#include <tuple>

namespace flowd::analyze {
namespace {

constexpr std::size_t kChunk = 4096;

auto endpoints(const Connection& c) {
  return std::tie(c.source.family, c.source.bytes, c.source_port, c.destination.family,
                  c.destination.bytes, c.destination_port, c.protocol);
}

}  // namespace

bool earlier(const Connection& a, const Connection& b) {
  if (a.start != b.start) return a.start < b.start;
  if (a.end != b.end) return a.end < b.end;
  return endpoints(a) < endpoints(b);
}

bool larger(const Connection& a, const Connection& b) {
  if (a.total_octets() != b.total_octets()) return a.total_octets() > b.total_octets();
  return earlier(a, b);
}

ConnectionOrder::ConnectionOrder(SortKey key, std::size_t capacity, Writer writer)
    : key_(key), capacity_(std::max<std::size_t>(capacity, 1)), writer_(std::move(writer)) {}

void ConnectionOrder::add(Connection&& c) {
  // std heaps keep the "largest" on top: invert the order to have the next to leave there.
  auto later = [](const Connection& a, const Connection& b) { return earlier(b, a); };
  switch (key_) {
    case SortKey::kNone:
      emit(std::move(c));
      return;
    case SortKey::kStart:
      held_.push_back(std::move(c));
      std::push_heap(held_.begin(), held_.end(), later);
      if (held_.size() > capacity_) {
        std::pop_heap(held_.begin(), held_.end(), later);
        Connection first = std::move(held_.back());
        held_.pop_back();
        emit(std::move(first));
      }
      return;
    case SortKey::kBytes:
      held_.push_back(std::move(c));
      std::push_heap(held_.begin(), held_.end(), larger);
      if (held_.size() > capacity_) {
        std::pop_heap(held_.begin(), held_.end(), larger);
        held_.pop_back();
        ++counters_.dropped;
      }
      return;
  }
}

void ConnectionOrder::emit(Connection&& c) {
  if (key_ == SortKey::kStart) {
    if (wrote_any_ && c.start < last_start_) ++counters_.late;
    last_start_ = std::max(last_start_, c.start);
    wrote_any_ = true;
  }
  chunk_.push_back(std::move(c));
  if (chunk_.size() >= kChunk) flush_chunk();
}

void ConnectionOrder::flush_chunk() {
  if (chunk_.empty()) return;
  counters_.written += chunk_.size();
  writer_(chunk_);
  chunk_.clear();
}

void ConnectionOrder::finish() {
  if (key_ == SortKey::kStart) std::sort(held_.begin(), held_.end(), earlier);
  if (key_ == SortKey::kBytes) std::sort(held_.begin(), held_.end(), larger);
  for (auto& c : held_) emit(std::move(c));
  held_.clear();
  held_.shrink_to_fit();
  flush_chunk();
}

}  // namespace flowd::analyze
