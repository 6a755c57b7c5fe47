// SPDX-License-Identifier: Apache-2.0
#include "analyze/connection_pairing.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace flowd::analyze {
namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t x) {
  h ^= x + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ULL;
  return h ^ (h >> 31);
}

}  // namespace

std::string_view to_string(Pairing p) {
  switch (p) {
    case Pairing::kBiflow:
      return "biflow";
    case Pairing::kMatched:
      return "matched";
    case Pairing::kUnpaired:
      return "unpaired";
  }
  return "?";
}

std::size_t ConnectionPairer::KeyHash::operator()(const Key& k) const noexcept {
  std::uint64_t h = mix(k.protocol, static_cast<std::uint64_t>(k.low.address.family));
  for (const Endpoint* e : {&k.low, &k.high}) {
    std::uint64_t w[2];
    std::memcpy(w, e->address.bytes.data(), sizeof w);
    h = mix(mix(mix(h, w[0]), w[1]), e->port);
  }
  return static_cast<std::size_t>(h);
}

ConnectionPairer::Key ConnectionPairer::key_of(std::uint8_t protocol, const Endpoint& x,
                                               const Endpoint& y) {
  auto less = [](const Endpoint& p, const Endpoint& q) {
    if (p.address.family != q.address.family) return p.address.family < q.address.family;
    if (int c = std::memcmp(p.address.bytes.data(), q.address.bytes.data(), 16); c != 0)
      return c < 0;
    return p.port < q.port;
  };
  Key key;
  key.protocol = protocol;
  key.low = less(x, y) ? x : y;
  key.high = less(x, y) ? y : x;
  return key;
}

ConnectionPairer::ConnectionPairer(PairingOptions options, Sink sink)
    : options_(options), sink_(std::move(sink)) {
  if (options_.max_open == 0) options_.max_open = 1;
}

void ConnectionPairer::add(const HalfFlow& flow, TimePoint arrival) {
  ++counters_.records;
  if (arrival > now_) {
    now_ = arrival;
    expire(now_);
  }
  const Key key = key_of(flow.protocol, {flow.source, flow.source_port},
                         {flow.destination, flow.destination_port});
  if (auto it = index_.find(key); it != index_.end()) {
    Entry& e = slots_[it->second];
    if (flow.start <= e.c.end + options_.window && flow.end + options_.window >= e.c.start) {
      merge(e, flow, arrival);
      return;
    }
    // The same 5-tuple much later (a reused port): the open connection is over.
    ++counters_.split;
    close(it->second);
  }
  if (index_.size() >= options_.max_open) evict_one();
  open(key, flow, arrival);
}

void ConnectionPairer::flush() {
  std::vector<std::uint32_t> live;
  live.reserve(index_.size());
  for (const auto& [key, slot] : index_) live.push_back(slot);
  // Oldest first, so that an unsorted output still reads roughly in time order.
  std::sort(live.begin(), live.end(), [&](std::uint32_t x, std::uint32_t y) {
    return slots_[x].c.start < slots_[y].c.start;
  });
  for (std::uint32_t slot : live) close(slot);
  deadlines_ = {};
}

std::uint32_t ConnectionPairer::open(const Key& key, const HalfFlow& flow, TimePoint arrival) {
  std::uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Entry& e = slots_[slot];
  const std::uint32_t generation = e.generation + 1;
  e = Entry{};
  e.generation = generation;
  e.live = true;
  e.c.protocol = flow.protocol;
  e.c.source = flow.source;  // a: the first record's source, until close() orients the connection
  e.c.source_port = flow.source_port;
  e.c.destination = flow.destination;
  e.c.destination_port = flow.destination_port;
  e.c.start = flow.start;
  e.c.end = flow.end;
  e.c.time_source = flow.time_source;
  e.last_arrival = arrival;
  merge(e, flow, arrival);
  index_.emplace(key, slot);
  deadlines_.push({arrival + options_.window, slot, generation});
  // Stale items of entries closed early (split, evicted) wait for their time to pop; keep them
  // from outgrowing the live entries.
  if (deadlines_.size() > 2 * options_.max_open + 1024) rebuild_heap();
  return slot;
}

void ConnectionPairer::merge(Entry& e, const HalfFlow& flow, TimePoint arrival) {
  const bool forward = flow.source == e.c.source && flow.source_port == e.c.source_port;
  const int f = forward ? 0 : 1;
  Connection& c = e.c;
  if (forward) {
    c.octets += flow.octets;
    c.packets += flow.packets;
    c.reverse_octets += flow.reverse_octets;
    c.reverse_packets += flow.reverse_packets;
  } else {
    c.octets += flow.reverse_octets;
    c.packets += flow.reverse_packets;
    c.reverse_octets += flow.octets;
    c.reverse_packets += flow.packets;
  }
  auto see = [&](Direction& d) {
    if (!d.seen || flow.start < d.first_start) {
      d.first_start = flow.start;
      d.flow_timed = flow.time_source != TimeSource::kReceived;
    }
    d.seen = true;
  };
  see(e.dir[f]);
  if (flow.biflow) {
    e.any_biflow = true;
    e.dir[f].biflow_forward = true;
    // A biflow whose reverse direction carried nothing (a SYN nobody answered) is one-sided.
    if (flow.reverse_packets > 0 || flow.reverse_octets > 0) see(e.dir[1 - f]);
  }
  c.start = std::min(c.start, flow.start);
  c.end = std::max(c.end, flow.end);
  c.time_source = std::max(c.time_source, flow.time_source);
  if (c.flow_label == 0) c.flow_label = flow.flow_label;
  ++c.records;
  e.last_arrival = std::max(e.last_arrival, arrival);
}

void ConnectionPairer::expire(TimePoint now) {
  while (!deadlines_.empty() && deadlines_.top().at < now) {
    const Deadline d = deadlines_.top();
    deadlines_.pop();
    Entry& e = slots_[d.slot];
    if (!e.live || e.generation != d.generation) continue;
    const TimePoint real = e.last_arrival + options_.window;
    if (real >= now) {
      deadlines_.push({real, d.slot, d.generation});
      continue;
    }
    close(d.slot);
  }
}

void ConnectionPairer::evict_one() {
  while (!deadlines_.empty()) {
    const Deadline d = deadlines_.top();
    deadlines_.pop();
    Entry& e = slots_[d.slot];
    if (!e.live || e.generation != d.generation) continue;
    const TimePoint real = e.last_arrival + options_.window;
    if (real > d.at) {
      deadlines_.push({real, d.slot, d.generation});
      continue;
    }
    e.c.evicted = true;
    ++counters_.evicted;
    close(d.slot);
    return;
  }
}

void ConnectionPairer::close(std::uint32_t slot) {
  Entry& e = slots_[slot];
  Connection c = e.c;
  const Endpoint a{c.source, c.source_port}, b{c.destination, c.destination_port};
  index_.erase(key_of(c.protocol, a, b));
  e.live = false;
  free_.push_back(slot);

  const bool both = e.dir[0].seen && e.dir[1].seen;
  c.pairing = !both ? Pairing::kUnpaired : e.any_biflow ? Pairing::kBiflow : Pairing::kMatched;
  // Orientation: the counters run a -> b. The initiator is the biflow's forward side, else the
  // side that started first (by the records' own times: an arrival time says nothing about who
  // started), else the side talking to the lower port (a server's).
  bool swap = false;
  const bool timed = e.dir[0].flow_timed && e.dir[1].flow_timed;
  if (e.dir[0].biflow_forward != e.dir[1].biflow_forward)
    swap = e.dir[1].biflow_forward;
  else if (both && timed && e.dir[1].first_start != e.dir[0].first_start)
    swap = e.dir[1].first_start < e.dir[0].first_start;
  else if (both)
    swap = a.port < b.port;
  const Endpoint& src = swap ? b : a;
  const Endpoint& dst = swap ? a : b;
  c.source = src.address;
  c.source_port = src.port;
  c.destination = dst.address;
  c.destination_port = dst.port;
  if (swap) {
    std::swap(c.octets, c.reverse_octets);
    std::swap(c.packets, c.reverse_packets);
  }
  ++counters_.connections;
  switch (c.pairing) {
    case Pairing::kBiflow:
      ++counters_.biflow;
      break;
    case Pairing::kMatched:
      ++counters_.matched;
      break;
    case Pairing::kUnpaired:
      ++counters_.unpaired;
      break;
  }
  sink_(std::move(c));
}

void ConnectionPairer::rebuild_heap() {
  std::vector<Deadline> items;
  items.reserve(index_.size());
  for (const auto& [key, slot] : index_)
    items.push_back({slots_[slot].last_arrival + options_.window, slot, slots_[slot].generation});
  deadlines_ = decltype(deadlines_)(std::greater<>{}, std::move(items));
}

}  // namespace flowd::analyze
