// SPDX-License-Identifier: Apache-2.0
// Turns exported flow records (NetFlow/IPFIX, sFlow samples) into observed flow events. A flow is
// reported when it carries a tag: a flow label that LabelPolicy accepts and that stays the same for
// the flow, or else a matching `rules` entry. Its first tagged record is `start`; a flowEndReason
// that says the flow is over, no record for `idle_timeout`, or a label that changes, is `end`. Pure
// and single-threaded.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "collector/flow_record.hpp"
#include "flowd/scitags_label.hpp"
#include "plugins/netflow/flow_rules.hpp"
#include "plugins/netflow/label_policy.hpp"

namespace flowd::netflow {

// The 5-tuple of a record, if it has one (IPv4 or IPv6, TCP or UDP).
std::optional<FlowID> flow_of(const collector::FlowRecord& r);
// The flowLabelIPv6 (IE 31) a record carries, if any.
std::optional<std::uint32_t> label_of(const collector::FlowRecord& r);

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
        max_flows_(max_flows) {}

  // Appends the events this record causes to `out`.
  Observation observe(const collector::FlowRecord& r, TimePoint now,
                      const std::shared_ptr<const ScitagsRegistry>& registry,
                      std::vector<FlowID>& out);
  // Ends flows not seen for idle_timeout.
  void expire(TimePoint now, std::vector<FlowID>& out);
  // Ends every flow (the plugin stops): each reported one gets its end event.
  void end_all(TimePoint now, std::vector<FlowID>& out);
  std::size_t size() const { return flows_.size(); }
  // Tagged flows that did not fit max_flows (their events are lost).
  std::size_t overflow() const { return overflow_; }

 private:
  struct Tracked {
    FlowID start;  // the start event, once reported
    TimePoint last_seen;
    std::uint32_t label = 0;
    bool labelled = false;  // `label` is the label its first labelled record carried
    bool reported = false;  // a start was published (an end is owed)
    bool unstable = false;  // its label changed: never a tag again until it expires
  };
  void end(Tracked& t, TimePoint now, std::vector<FlowID>& out);

  std::vector<FlowRule> rules_;
  LabelPolicy policy_;
  std::chrono::seconds idle_;
  std::size_t max_flows_;
  std::size_t overflow_ = 0;
  std::unordered_map<FlowKey, Tracked, FlowKeyHash> flows_;
};

}  // namespace flowd::netflow
