// SPDX-License-Identifier: Apache-2.0
#include "netlink/connection_tracker.hpp"

#include "netlink/sock_diag.hpp"

namespace flowd::netlink {

FlowID ConnectionTracker::event(const FlowKey& key, const Tracked& t, FlowState state, TimePoint now) const {
  FlowID f;
  f.state = state;
  f.protocol = Protocol::kTcp;
  f.src = key.src;
  f.dst = key.dst;
  f.src_port = key.src_port;
  f.dst_port = key.dst_port;
  f.experiment = t.tag.experiment;
  f.activity = t.tag.activity;
  (state == FlowState::kEnd ? f.end_time : f.start_time) = now;
  return f;
}

void ConnectionTracker::observe(const Connection& c, TimePoint now, std::vector<FlowID>& out) {
  if (c.state == kTcpListen || c.remote_port == 0) return;
  FlowKey key{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
  std::uint32_t gen = scans_ + 1;
  auto [it, fresh] = conns_.try_emplace(key, Tracked{gen, Status::kPending, {}});
  Tracked& t = it->second;
  t.generation = gen;
  if (fresh) {
    if (!filter_.accepts(c.remote)) {
      t.status = Status::kIgnored;
      return;
    }
    // Connections older than flowd: their start was long ago, so the original keeps quiet about them.
    if (scans_ == 0 && !report_existing_) {
      t.status = Status::kAdopted;
      return;
    }
  }
  switch (t.status) {
    case Status::kPending:
      if (c.state == kTcpEstablished) {
        bool retry = false;
        auto tag = tagger_(c, retry);
        if (!tag) {
          if (!retry) t.status = Status::kIgnored;
          return;
        }
        t.tag = *tag;
        t.status = Status::kStarted;
        ++started_;
        out.push_back(event(key, t, FlowState::kStart, now));
      } else if (is_closing_state(c.state)) {
        t.status = Status::kIgnored;  // closed before we saw it established: nothing to report
      }
      break;
    case Status::kStarted:
      if (is_closing_state(c.state)) {
        t.status = Status::kEnded;
        --started_;
        out.push_back(event(key, t, FlowState::kEnd, now));
      }
      break;
    default:
      break;
  }
}

void ConnectionTracker::finish(TimePoint now, std::vector<FlowID>& out) {
  std::uint32_t gen = ++scans_;
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second.generation == gen) {
      ++it;
      continue;
    }
    if (it->second.status == Status::kStarted) {
      --started_;
      out.push_back(event(it->first, it->second, FlowState::kEnd, now));
    }
    it = conns_.erase(it);
  }
}

}  // namespace flowd::netlink
