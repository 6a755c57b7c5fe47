// SPDX-License-Identifier: Apache-2.0
// Turns exported flow records into flow events: a record's first sight is `start`; a flowEndReason
// that says the flow is over, or no record for `idle_timeout`, is `end`. Records without a Scitags tag
// (from the IPv6 flow label, else from the rules) are not flows flowd reports. Pure and single-threaded.
#pragma once

#include <chrono>
#include <optional>
#include <unordered_map>
#include <vector>

#include "collector/flow_record.hpp"
#include "plugins/netflow/flow_rules.hpp"

namespace flowd::netflow {

// The 5-tuple of a record, if it has one (IPv4 or IPv6, TCP or UDP).
std::optional<FlowID> flow_of(const collector::FlowRecord& r);
// The Scitags tag carried in flowLabelIPv6 (IE 31), when its semantic bits are set.
std::optional<std::pair<unsigned, unsigned>> tag_of(const collector::FlowRecord& r);

class FlowTracker {
 public:
  FlowTracker(std::vector<FlowRule> rules, std::chrono::seconds idle_timeout, std::size_t max_flows)
      : rules_(std::move(rules)), idle_(idle_timeout), max_flows_(max_flows) {}

  // Appends the events this record causes to `out`. Returns false when the record was not a tagged
  // TCP/UDP flow (nothing to report).
  bool observe(const collector::FlowRecord& r, TimePoint now, std::vector<FlowID>& out);
  // Ends flows not seen for idle_timeout.
  void expire(TimePoint now, std::vector<FlowID>& out);
  std::size_t size() const { return flows_.size(); }
  std::size_t overflow() const { return overflow_; }

 private:
  struct Tracked {
    FlowID start;
    TimePoint last_seen;
  };
  std::vector<FlowRule> rules_;
  std::chrono::seconds idle_;
  std::size_t max_flows_;
  std::size_t overflow_ = 0;
  std::unordered_map<FlowKey, Tracked, FlowKeyHash> flows_;
};

}  // namespace flowd::netflow
