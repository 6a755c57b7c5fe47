// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/kept_flows.hpp"

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "flowd/scitags_label.hpp"

namespace flowd::ebpf {
namespace {

bool same_key(const flowd_flow_key& a, const flowd_flow_key& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

void KeptFlows::set(std::vector<KeptEntry> entries, TimePoint since) {
  std::lock_guard lock(mu_);
  kept_.clear();
  for (auto& e : entries) kept_.push_back({std::move(e), since});
  count_.store(kept_.size(), std::memory_order_relaxed);
}

void KeptFlows::forget(const flowd_flow_key& key) {
  if (empty()) return;
  std::lock_guard lock(mu_);
  std::erase_if(kept_, [&](const Kept& k) { return same_key(k.entry.key, key); });
  count_.store(kept_.size(), std::memory_order_relaxed);
}

std::vector<ActiveFlow> KeptFlows::listed() const {
  std::vector<ActiveFlow> out;
  if (empty()) return out;
  std::lock_guard lock(mu_);
  for (const auto& k : kept_) {
    const LabelTag tag = decode_label(k.entry.label);
    out.push_back(ActiveFlow{k.entry.flow,
                             FlowOrigin::kLocal,
                             static_cast<std::uint16_t>(tag.experiment),
                             static_cast<std::uint16_t>(tag.activity),
                             "ebpf",
                             k.since,
                             {}});
  }
  return out;
}

KeptFlows::Checked KeptFlows::check(int map_fd) {
  Checked r;
  if (empty()) return r;
  std::vector<Kept> kept;
  {
    std::lock_guard lock(mu_);
    kept = kept_;
  }
  const bool any_tcp = std::any_of(kept.begin(), kept.end(),
                                   [](const Kept& k) { return k.entry.key.proto == IPPROTO_TCP; });
  std::map<std::string, IpAddress> live;
  const bool listed = !any_tcp || live_tcp_keys(live, r.error);
  if (!listed && r.error.empty()) r.error = "the dump failed";
  std::vector<flowd_flow_key> gone;
  for (const auto& k : kept) {
    std::uint32_t label = 0;
    if (bpf_map_lookup_elem(map_fd, &k.entry.key, &label) != 0) {
      ++r.evicted;
      gone.push_back(k.entry.key);
      continue;
    }
    if (k.entry.key.proto != IPPROTO_TCP || !listed || live.count(key_bytes(k.entry.key))) continue;
    // Only the kept label: a plugin that marked the flow meanwhile owns the entry.
    if (label == k.entry.label && bpf_map_delete_elem(map_fd, &k.entry.key) == 0) ++r.ended;
    gone.push_back(k.entry.key);
  }
  std::lock_guard lock(mu_);
  for (const auto& key : gone)
    std::erase_if(kept_, [&](const Kept& k) { return same_key(k.entry.key, key); });
  count_.store(kept_.size(), std::memory_order_relaxed);
  return r;
}

}  // namespace flowd::ebpf
