// SPDX-License-Identifier: Apache-2.0
// The marker's flow map (flowd_flow_labels, BPF_MAP_TYPE_LRU_HASH) seen from user space: counting
// its entries, carrying them from one instance of the map to the next, and pinning it in a BPF file
// system so that a restarted flowd keeps marking the flows it marked before (issue 13).
#pragma once

#include <cstdint>
#include <string>

#include "common/unique_fd.hpp"

namespace flowd::ebpf {

// What must match for one map to stand in for another (bpf_map_info).
struct MapShape {
  std::uint32_t type = 0;
  std::uint32_t key_size = 0;
  std::uint32_t value_size = 0;
  std::uint32_t max_entries = 0;
  bool operator==(const MapShape&) const = default;
};

// The map's shape; all zero when the descriptor is not a BPF map.
MapShape map_shape(int map_fd);
// The kernel's id of the map (one map, whatever descriptor names it); 0 when it cannot be read.
std::uint32_t map_id(int map_fd);

// Entries in the map, walked with BPF_MAP_GET_NEXT_KEY (one system call per entry; at the default
// 100,000 entries a few tens of milliseconds). The kernel's LRU evicts without telling user space,
// so counting is the only exact figure.
std::uint64_t count_entries(int map_fd);

// What copy_entries did with the entries of `from` it walked (those deleted before their turn,
// their flows ended meanwhile, are in neither count).
struct CopyResult {
  std::uint64_t copied = 0;      // updates the kernel accepted
  std::uint64_t not_copied = 0;  // present, but past `limit` or refused by `to` (E2BIG, ENOMEM)
  int refusal = 0;               // the errno of `to`'s first refusal, 0 if none
};

// Copies entries of `from` into `to` (same key and value sizes), at most `limit` of them (the new
// map's capacity: an LRU map takes more, evicting what it took before, so copying more would lose
// entries at random and overstate the copy); the rest are walked and counted, not copied. The value
// is the label alone, with no time of use, so the order is the map's key order (hash buckets:
// arbitrary, not recency). The copy runs pinned to one CPU: an LRU map hands out its free entries
// in per-CPU batches, and a thread that migrates strands them, making the map evict before it is
// full. What is present afterwards is count_entries(to) (an LRU map may still have evicted some of
// the copied).
CopyResult copy_entries(int from_fd, int to_fd, std::uint32_t key_size, std::uint32_t value_size,
                        std::uint64_t limit);

// The map pinned at `path`, or an empty UniqueFd when nothing is pinned there (or it is not a map).
UniqueFd open_pinned_map(const std::string& path);

// Why the object pinned at `path` is not a flow map of flowd's, or an empty string when nothing is
// pinned there or it is one: a BPF map named `name` (the kernel keeps 15 bytes of it) of `ours`'
// type, key size and value size; its max_entries may differ (max_flows changed). Otherwise e.g.
// "a BPF map named 'other' (type 2, key 4 bytes, value 8 bytes)" or "a BPF program". pin_map()
// replaces what is pinned, so another tool's object must be refused before.
std::string foreign_pin(const std::string& path, const MapShape& ours, const std::string& name);

// Pins `map_fd` at `path`, replacing what is pinned there and creating the parent directory.
// Returns an empty string, or why it failed: "<dir> cannot be created: <reason>" (followed by
// "; <dir> is not in a BPF file system (mount -t bpf bpf <dir>)" when the nearest directory that
// exists is not in one: under `ip netns exec`, /sys/fs/bpf is a plain sysfs directory), "<dir> is
// not in a BPF file system (...)", or the kernel's reason for refusing the pin.
std::string pin_map(int map_fd, const std::string& path);

}  // namespace flowd::ebpf
