// SPDX-License-Identifier: Apache-2.0
// Reverse-DNS names (getnameinfo with NI_NAMEREQD) with a cache and a deadline per lookup.
// getnameinfo cannot be cancelled and may block for the resolver's own timeouts times its attempts,
// so lookups run on a few worker threads and a caller waits at most `timeout` for one; a lookup
// still running then is abandoned (its name, if it comes, still fills the cache). Workers that are
// still blocked when the ReverseDns is destroyed are detached: they end with their getnameinfo.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "flowd/flow_id.hpp"

namespace flowd::analyze {

struct ReverseDnsOptions {
  std::chrono::milliseconds timeout{1000};  // per lookup, from when it was asked for
  std::size_t max_cache = 100'000;          // names (and failures) kept; then lookups stop
  unsigned threads = 4;                     // lookups in parallel
};

struct ReverseDnsCounters {
  std::size_t lookups = 0;    // getnameinfo calls started
  std::size_t names = 0;      // ...that gave a name
  std::size_t timeouts = 0;   // waits that gave up at the deadline
  std::size_t not_asked = 0;  // addresses not looked up because the cache was full
};

class ReverseDns {
 public:
  explicit ReverseDns(ReverseDnsOptions options = {});
  ~ReverseDns();
  ReverseDns(const ReverseDns&) = delete;
  ReverseDns& operator=(const ReverseDns&) = delete;

  // Starts looking `address` up unless it is cached or under way (so that many can run at once).
  void prefetch(const IpAddress& address);
  // The name of `address`: prefetches it if needed and waits until its deadline. nullopt when it
  // has no name, the lookup failed or timed out, or the cache is full.
  std::optional<std::string> name(const IpAddress& address);
  ReverseDnsCounters counters() const;

 private:
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace flowd::analyze
