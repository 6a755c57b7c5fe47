// SPDX-License-Identifier: Apache-2.0
// The flows a pinned map held when this marker took it over from a flowd no longer running (kill
// -9, a crash; issue 15): still marked, but reported by no plugin of this flowd, so `flowd flows`
// showed none of them and nothing would ever end them. They are listed (plugin "ebpf", started at
// the takeover) until a plugin reports the flow (its start makes the flow the plugin's, its end
// removes it), their TCP connection closes (check(): one sock_diag dump, the entry deleted) or the
// map's LRU evicts them. Thread-safe: the marker's event thread forgets, its run() thread checks,
// the API's threads list.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "backends/ebpf/stale_flows.hpp"
#include "flowd/daemon_status.hpp"

namespace flowd::ebpf {

class KeptFlows {
 public:
  // The entries kept at the takeover, from `since`.
  void set(std::vector<KeptEntry> entries, TimePoint since);
  // A plugin reported the flow of `key` (start or end): it is not kept any more.
  void forget(const flowd_flow_key& key);
  bool empty() const { return count_.load(std::memory_order_relaxed) == 0; }
  std::size_t size() const { return count_.load(std::memory_order_relaxed); }
  // As GET /v1/flows lists them: origin local, plugin "ebpf", the tag of their label.
  std::vector<ActiveFlow> listed() const;

  struct Checked {
    std::size_t ended = 0;    // TCP entries whose connection closed: deleted from the map
    std::size_t evicted = 0;  // entries the map no longer holds (its LRU, or a plugin's end)
    std::string error;        // the sockets could not be listed: TCP entries left as they are
  };
  // Drops what `map_fd` no longer holds, and deletes (if the map still holds the label kept) and
  // drops the TCP entries without a live connection.
  Checked check(int map_fd);

 private:
  struct Kept {
    KeptEntry entry;
    TimePoint since;
  };
  mutable std::mutex mu_;
  std::vector<Kept> kept_;
  std::atomic<std::size_t> count_{0};
};

}  // namespace flowd::ebpf
