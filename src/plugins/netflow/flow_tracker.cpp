// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/flow_tracker.hpp"

#include "flowd/scitags_label.hpp"

namespace flowd::netflow {
namespace {

// IANA information element ids used here (RFC 7012 registry).
constexpr std::uint16_t kProtocol = 4, kSrcPort = 7, kSrcV4 = 8, kDstPort = 11, kDstV4 = 12,
                        kSrcV6 = 27, kDstV6 = 28, kFlowLabel = 31, kFlowEndReason = 136;

std::optional<std::uint64_t> unsigned_of(const collector::FlowRecord& r, std::uint16_t id) {
  const auto* f = r.find(id);
  if (!f || f->value.kind != collector::ValueKind::kUnsigned) return std::nullopt;
  return f->value.u;
}

}  // namespace

std::optional<FlowID> flow_of(const collector::FlowRecord& r) {
  // One pass over the fields: this runs for every record a collector receives.
  const collector::Field *proto = nullptr, *sport = nullptr, *dport = nullptr, *src4 = nullptr,
                         *dst4 = nullptr, *src6 = nullptr, *dst6 = nullptr;
  for (const auto& f : r.fields) {
    if (f.pen != 0) continue;
    switch (f.id) {
      case kProtocol:
        proto = proto ? proto : &f;
        break;
      case kSrcPort:
        sport = sport ? sport : &f;
        break;
      case kDstPort:
        dport = dport ? dport : &f;
        break;
      case kSrcV4:
        src4 = src4 ? src4 : &f;
        break;
      case kDstV4:
        dst4 = dst4 ? dst4 : &f;
        break;
      case kSrcV6:
        src6 = src6 ? src6 : &f;
        break;
      case kDstV6:
        dst6 = dst6 ? dst6 : &f;
        break;
      default:
        break;
    }
  }
  auto is_unsigned = [](const collector::Field* f) {
    return f && f->value.kind == collector::ValueKind::kUnsigned;
  };
  if (!is_unsigned(proto) || (proto->value.u != 6 && proto->value.u != 17)) return std::nullopt;
  const auto* src = src6;
  const auto* dst = dst6;
  if (!src || !dst) {
    src = src4;
    dst = dst4;
  }
  if (!src || !dst || !is_unsigned(sport) || !is_unsigned(dport) || src->value.ip.family == 0 ||
      src->value.ip.family != dst->value.ip.family)
    return std::nullopt;
  FlowID f;
  f.origin = FlowOrigin::kObserved;  // addresses read from an export: evidence, never a destination
  f.protocol = proto->value.u == 6 ? Protocol::kTcp : Protocol::kUdp;
  f.src = src->value.ip;
  f.dst = dst->value.ip;
  f.src_port = static_cast<std::uint16_t>(sport->value.u);
  f.dst_port = static_cast<std::uint16_t>(dport->value.u);
  return f;
}

std::optional<std::uint32_t> label_of(const collector::FlowRecord& r) {
  auto label = unsigned_of(r, kFlowLabel);
  if (!label) return std::nullopt;
  return static_cast<std::uint32_t>(*label & FLOWD_LABEL_MASK);
}

void FlowTracker::end(Tracked& t, TimePoint now, std::vector<FlowID>& out) {
  if (!t.reported) return;
  FlowID e = t.start;
  e.state = FlowState::kEnd;
  e.end_time = now;
  out.push_back(e);
  t.reported = false;
}

Observation FlowTracker::observe(const collector::FlowRecord& r, TimePoint now,
                                 const std::shared_ptr<const ScitagsRegistry>& registry,
                                 std::vector<FlowID>& out) {
  Observation obs;
  if (r.options) return obs;
  const auto label = label_of(r);
  if (!label && rules_.empty()) return obs;  // no label and no rules: most records of a busy router
  std::optional<FlowID> flow;
  if (label) {
    IpAddress src, dst;
    if (policy_.needs_addresses() && (flow = flow_of(r))) src = flow->src, dst = flow->dst;
    obs.label = policy_.classify(*label, src, dst, registry);
  }
  // Only tagged flows are remembered: a flow whose label changes after it was tagged stops counting
  // as tagged. Remembering every labelled flow would let a router's untagged IPv6 traffic (nearly
  // all of it, with random labels) fill max_flows and crowd out the tagged flows.
  if (obs.label != LabelResult::kTag && flows_.empty() && rules_.empty()) return obs;
  if (!flow) flow = flow_of(r);
  if (!flow) {
    // No 5-tuple (ICMP, fragments): nothing to track, so no stability check and no events.
    if (obs.label == LabelResult::kTag) obs.tag = decode_label(*label);
    return obs;
  }
  const FlowKey key = FlowKey::of(*flow);
  auto it = flows_.find(key);
  const bool remember = obs.label == LabelResult::kTag;
  if (it != flows_.end() && label) {
    Tracked& t = it->second;
    if (!t.labelled) {
      t.labelled = true;
      t.label = *label;
    } else if (t.unstable || t.label != *label) {
      // One flow, two labels: a kernel re-hash, a random label, or a forged one. Whatever it was,
      // it is not a tag the flow's sender set; an earlier start is ended.
      t.unstable = true;
      end(t, now, out);
      obs.label = LabelResult::kUnstable;
    }
  }
  std::optional<LabelTag> tag;
  if (obs.label == LabelResult::kTag) tag = decode_label(*label);
  if (!tag && !(it != flows_.end() && it->second.unstable)) {
    if (const auto* rule = match_rule(rules_, *flow))
      tag = LabelTag{rule->experiment, rule->activity};
  }
  obs.tag = tag;
  if (it == flows_.end()) {
    if (!remember && !tag) return obs;
    if (flows_.size() >= max_flows_) {
      ++overflow_;
      return obs;
    }
    Tracked t;
    t.last_seen = now;
    if (label) t.labelled = true, t.label = *label;
    it = flows_.emplace(key, t).first;
  }
  Tracked& t = it->second;
  t.last_seen = now;
  if (tag && !t.reported && !t.unstable) {
    FlowID start = *flow;
    start.state = FlowState::kStart;
    start.experiment = static_cast<std::uint16_t>(tag->experiment);
    start.activity = static_cast<std::uint16_t>(tag->activity);
    start.start_time = now;
    t.start = start;
    t.reported = true;
    out.push_back(start);
  }
  // flowEndReason: 1 idle timeout, 3 end of flow detected, 4 forced end, 5 lack of resources end
  // the flow; 2 (active timeout) is a long flow's periodic report.
  if (auto reason = unsigned_of(r, kFlowEndReason); reason && *reason != 2) {
    end(t, now, out);
    flows_.erase(it);
  }
  return obs;
}

void FlowTracker::expire(TimePoint now, std::vector<FlowID>& out) {
  for (auto it = flows_.begin(); it != flows_.end();) {
    if (now - it->second.last_seen >= idle_) {
      end(it->second, now, out);
      it = flows_.erase(it);
    } else {
      ++it;
    }
  }
}

void FlowTracker::end_all(TimePoint now, std::vector<FlowID>& out) {
  for (auto& [key, t] : flows_) end(t, now, out);
  flows_.clear();
}

}  // namespace flowd::netflow
