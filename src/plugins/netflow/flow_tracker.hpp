// SPDX-License-Identifier: Apache-2.0
// Turns exported flow records (NetFlow/IPFIX, sFlow samples) into observed flow events. A flow is
// reported when it carries a tag: a flow label that LabelPolicy accepts and that stays the same for
// the flow, or else a matching `rules` entry. Its first tagged record is `start`; a flowEndReason
// that says the flow is over, no record for `idle_timeout`, or a label that changes, is `end`. Pure
// and single-threaded.
#pragma once

#include <array>
#include <bitset>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "collector/flow_record.hpp"
#include "common/flow_table.hpp"
#include "flowd/scitags_label.hpp"
#include "plugins/netflow/flow_rules.hpp"
#include "plugins/netflow/label_policy.hpp"

namespace flowd::netflow {

// The 5-tuple of a record, if it has one (IPv4 or IPv6, TCP or UDP).
std::optional<FlowID> flow_of(const collector::FlowRecord& r);
// The flowLabelIPv6 (IE 31) a record carries, if any.
std::optional<std::uint32_t> label_of(const collector::FlowRecord& r);

namespace detail {

// The key field `s` of a record if it is an unsigned value.
inline const collector::Field* unsigned_key(const collector::FlowRecord& r,
                                            collector::KeyFields::Slot s) {
  const auto* f = r.key(s);
  return f && f->value.kind == collector::ValueKind::kUnsigned ? f : nullptr;
}

// The fields of a record's 5-tuple, when it has one (IPv4 or IPv6, TCP or UDP), read in place:
// building a FlowKey for every record costs more than the checks, and most records need none.
struct Tuple {
  const collector::Field *proto = nullptr, *src = nullptr, *dst = nullptr, *sport = nullptr,
                         *dport = nullptr;
  Protocol protocol() const { return proto->value.u == 6 ? Protocol::kTcp : Protocol::kUdp; }
  std::uint16_t src_port() const { return static_cast<std::uint16_t>(sport->value.u); }
  std::uint16_t dst_port() const { return static_cast<std::uint16_t>(dport->value.u); }
  FlowKey key() const { return {protocol(), src->value.ip, dst->value.ip, src_port(), dst_port()}; }
};

inline bool tuple_of(const collector::FlowRecord& r, Tuple& t) {
  using collector::KeyFields;
  t.proto = unsigned_key(r, KeyFields::kProtocol);
  if (!t.proto || (t.proto->value.u != 6 && t.proto->value.u != 17)) return false;
  t.src = r.key(KeyFields::kSrcV6);
  t.dst = r.key(KeyFields::kDstV6);
  if (!t.src || !t.dst) {
    t.src = r.key(KeyFields::kSrcV4);
    t.dst = r.key(KeyFields::kDstV4);
  }
  if (!t.src || !t.dst || t.src->value.ip.family == 0 ||
      t.src->value.ip.family != t.dst->value.ip.family)
    return false;
  t.sport = unsigned_key(r, KeyFields::kSrcPort);
  t.dport = unsigned_key(r, KeyFields::kDstPort);
  return t.sport && t.dport;
}

}  // namespace detail

// What one record was, for the observed-traffic metrics.
struct Observation {
  std::optional<LabelResult> label;  // set when the record carried a flow label
  std::optional<LabelTag> tag;  // the tag its traffic counts under (label or rule); none: untagged
};

class FlowTracker {
 public:
  FlowTracker(std::vector<FlowRule> rules, LabelPolicy policy, std::chrono::seconds idle_timeout,
              std::size_t max_flows)
      : rules_(std::move(rules)),
        policy_(std::move(policy)),
        idle_(idle_timeout),
        flows_(max_flows) {}

  // Appends the events this record causes to `out`.
  Observation observe(const collector::FlowRecord& r, TimePoint now,
                      const std::shared_ptr<const ScitagsRegistry>& registry,
                      std::vector<FlowID>& out) {
    Observation obs;
    observe(r, now, registry, out, obs);
    return obs;
  }
  // The same into `obs`, for loops over every record of a collector. The common case of a router's
  // IPv6 traffic, a label that is no tag on a flow that is not tracked with neither rules nor
  // label_networks, is settled inline; anything else takes the whole way (observe_all). Not a
  // returned Observation: GCC builds that one in pieces on the stack and copies it whole, and the
  // copy waits for the pieces (a store-forwarding stall) longer than the rest of this check takes.
  void observe(const collector::FlowRecord& r, TimePoint now,
               const std::shared_ptr<const ScitagsRegistry>& registry, std::vector<FlowID>& out,
               Observation& obs) {
    obs.label.reset();
    obs.tag.reset();
    if (r.options) return;
    if (!rules_.empty() || policy_.needs_addresses()) {
      obs = observe_all(r, now, registry, out);
      return;
    }
    const auto* label = detail::unsigned_key(r, collector::KeyFields::kFlowLabel);
    if (!label) return;
    const LabelResult result =
        policy_.classify(static_cast<std::uint32_t>(label->value.u & FLOWD_LABEL_MASK), registry);
    if (result == LabelResult::kTag) {
      obs = observe_all(r, now, registry, out);
      return;
    }
    if (!flows_.empty()) {
      // Without both ports there is no 5-tuple, so nothing to look up either.
      const auto* sport = detail::unsigned_key(r, collector::KeyFields::kSrcPort);
      const auto* dport = detail::unsigned_key(r, collector::KeyFields::kDstPort);
      if (sport && dport &&
          tracked_.may_contain(static_cast<std::uint16_t>(sport->value.u),
                               static_cast<std::uint16_t>(dport->value.u))) {
        obs = observe_all(r, now, registry, out);
        return;
      }
    }
    obs.label = result;
  }
  // Ends flows not seen for idle_timeout.
  void expire(TimePoint now, std::vector<FlowID>& out);
  // Ends every flow (the plugin stops): each reported one gets its end event.
  void end_all(TimePoint now, std::vector<FlowID>& out);
  std::size_t size() const { return flows_.size(); }
  // Tagged flows that did not fit max_flows (their events are lost).
  std::uint64_t overflow() const { return flows_.overflow(); }

 private:
  struct Tracked {
    FlowID start;  // the start event, once reported
    TimePoint last_seen;
    std::uint32_t label = 0;
    bool labelled = false;  // `label` is the label its first labelled record carried
    bool reported = false;  // a start was published (an end is owed)
    bool unstable = false;  // its label changed: never a tag again until it expires
  };
  // Bounded by max_flows. The one FlowTable owner that refuses rather than evicts: its flows
  // expire after idle_timeout, so a lost end cannot fill it for good, and evicting a live flow
  // would publish an end that the flow's next record contradicts with a new start (a start/end
  // pair per record while more tagged flows are live than fit). Refused flows are counted.
  using Flows = FlowTable<FlowKey, Tracked, FlowKeyHash>;

  // Counts the tracked flows per bucket of a hash of their two ports, so that a record whose flow
  // is not tracked (nearly every record: only tagged flows are) usually needs neither the rest of
  // its 5-tuple nor the table's hash and lookup. Exact: a bucket at zero means no tracked flow has
  // those ports.
  class PortFilter {
   public:
    bool may_contain(std::uint16_t src_port, std::uint16_t dst_port) const {
      return used_.test(bucket(src_port, dst_port));
    }
    void insert(const FlowKey& k) {
      const std::size_t b = bucket(k.src_port, k.dst_port);
      ++counts_[b];
      used_.set(b);
    }
    void erase(const FlowKey& k) {
      const std::size_t b = bucket(k.src_port, k.dst_port);
      if (--counts_[b] == 0) used_.reset(b);
    }
    void clear() {
      counts_.fill(0);
      used_.reset();
    }

   private:
    static constexpr unsigned kBits = 11;  // 2048 counters, 8 KiB
    static std::size_t bucket(std::uint16_t src_port, std::uint16_t dst_port) {
      return ((std::uint32_t{src_port} << 16 | dst_port) * 0x9E3779B1u) >> (32 - kBits);
    }
    std::array<std::uint32_t, std::size_t{1} << kBits> counts_{};
    // Which counts are non-zero: all that a record's check reads (256 bytes stay in the L1 cache,
    // where the 8 KiB of counts were evicted by the records themselves).
    std::bitset<std::size_t{1} << kBits> used_;
  };

  Observation observe_all(const collector::FlowRecord& r, TimePoint now,
                          const std::shared_ptr<const ScitagsRegistry>& registry,
                          std::vector<FlowID>& out);
  void end(Tracked& t, TimePoint now, std::vector<FlowID>& out);

  std::vector<FlowRule> rules_;
  LabelPolicy policy_;
  std::chrono::seconds idle_;
  Flows flows_;
  PortFilter tracked_;  // the ports of flows_
};

}  // namespace flowd::netflow
