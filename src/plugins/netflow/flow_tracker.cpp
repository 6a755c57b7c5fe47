// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/flow_tracker.hpp"

#include "flowd/scitags_label.hpp"

namespace flowd::netflow {
namespace {

using collector::KeyFields;

using detail::Tuple;
using detail::tuple_of;
using detail::unsigned_key;

FlowID flow_id_of(const FlowKey& k) {
  FlowID f;
  f.origin = FlowOrigin::kObserved;  // addresses read from an export: evidence, never a destination
  f.protocol = k.protocol;
  f.src = k.src;
  f.dst = k.dst;
  f.src_port = k.src_port;
  f.dst_port = k.dst_port;
  return f;
}

}  // namespace

std::optional<FlowID> flow_of(const collector::FlowRecord& r) {
  Tuple t;
  if (!tuple_of(r, t)) return std::nullopt;
  return flow_id_of(t.key());
}

std::optional<std::uint32_t> label_of(const collector::FlowRecord& r) {
  const auto* f = unsigned_key(r, KeyFields::kFlowLabel);
  if (!f) return std::nullopt;
  return static_cast<std::uint32_t>(f->value.u & FLOWD_LABEL_MASK);
}

void FlowTracker::end(Tracked& t, TimePoint now, std::vector<FlowID>& out) {
  if (!t.reported) return;
  FlowID e = t.start;
  e.state = FlowState::kEnd;
  e.end_time = now;
  out.push_back(e);
  t.reported = false;
}

Observation FlowTracker::observe_all(const collector::FlowRecord& r, TimePoint now,
                                     const std::shared_ptr<const ScitagsRegistry>& registry,
                                     std::vector<FlowID>& out) {
  Observation obs;
  if (r.options) return obs;
  const auto label = label_of(r);
  if (!label && rules_.empty()) return obs;  // no label and no rules: most records of a busy router
  Tuple tuple;
  enum class Known : std::uint8_t { kNotYet, kYes, kNo } has_tuple = Known::kNotYet;
  auto read_tuple = [&] {
    if (has_tuple == Known::kNotYet) has_tuple = tuple_of(r, tuple) ? Known::kYes : Known::kNo;
    return has_tuple == Known::kYes;
  };
  if (label) {
    static const IpAddress kNone;
    const bool addresses = policy_.needs_addresses() && read_tuple();
    obs.label = policy_.classify(*label, addresses ? tuple.src->value.ip : kNone,
                                 addresses ? tuple.dst->value.ip : kNone, registry);
  }
  // Only tagged flows are remembered: a flow whose label changes after it was tagged stops counting
  // as tagged. Remembering every labelled flow would let a router's untagged IPv6 traffic (nearly
  // all of it, with random labels) fill max_flows and crowd out the tagged flows.
  if (obs.label != LabelResult::kTag && flows_.empty() && rules_.empty()) return obs;
  if (!read_tuple()) {
    // No 5-tuple (ICMP, fragments): nothing to track, so no stability check and no events.
    if (obs.label == LabelResult::kTag) obs.tag = decode_label(*label);
    return obs;
  }
  const bool remember = obs.label == LabelResult::kTag;
  // An untagged record of a flow that is not tracked, with no rules to match: the common case of
  // a router's traffic, settled by the prefilter without building or hashing the key.
  if (!remember && rules_.empty() && !tracked_.may_contain(tuple.src_port(), tuple.dst_port()))
    return obs;
  const FlowKey key = tuple.key();
  Tracked* t = flows_.find(key);
  if (t && label) {
    if (!t->labelled) {
      t->labelled = true;
      t->label = *label;
    } else if (t->unstable || t->label != *label) {
      // One flow, two labels: a kernel re-hash, a random label, or a forged one. Whatever it was,
      // it is not a tag the flow's sender set; an earlier start is ended.
      t->unstable = true;
      end(*t, now, out);
      obs.label = LabelResult::kUnstable;
    }
  }
  std::optional<LabelTag> tag;
  if (obs.label == LabelResult::kTag) tag = decode_label(*label);
  if (!tag && !rules_.empty() && !(t && t->unstable)) {
    if (const auto* rule = match_rule(rules_, flow_id_of(key)))
      tag = LabelTag{rule->experiment, rule->activity};
  }
  obs.tag = tag;
  if (!t) {
    if (!remember && !tag) return obs;
    Tracked fresh;
    if (label) fresh.labelled = true, fresh.label = *label;
    t = flows_.emplace_or_refuse(key, fresh).first;
    if (!t) return obs;  // full: counted in overflow()
    tracked_.insert(key);
  }
  t->last_seen = now;
  if (tag && !t->reported && !t->unstable) {
    FlowID start = flow_id_of(key);
    start.state = FlowState::kStart;
    start.experiment = static_cast<std::uint16_t>(tag->experiment);
    start.activity = static_cast<std::uint16_t>(tag->activity);
    start.start_time = now;
    t->start = start;
    t->reported = true;
    out.push_back(start);
  }
  // flowEndReason: 1 idle timeout, 3 end of flow detected, 4 forced end, 5 lack of resources end
  // the flow; 2 (active timeout) is a long flow's periodic report.
  if (const auto* reason = unsigned_key(r, KeyFields::kFlowEndReason);
      reason && reason->value.u != 2) {
    end(*t, now, out);
    flows_.erase(key);
    tracked_.erase(key);
  }
  return obs;
}

void FlowTracker::expire(TimePoint now, std::vector<FlowID>& out) {
  flows_.erase_if([&](const FlowKey& key, Tracked& t) {
    if (now - t.last_seen < idle_) return false;
    end(t, now, out);
    tracked_.erase(key);
    return true;
  });
}

void FlowTracker::end_all(TimePoint now, std::vector<FlowID>& out) {
  flows_.for_each([&](const FlowKey&, Tracked& t) { end(t, now, out); });
  flows_.clear();
  tracked_.clear();
}

}  // namespace flowd::netflow
