// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/connection_tracker.hpp"

#include <utility>

#include "netlink/sock_diag.hpp"

namespace flowd::scanner {

ConnectionTracker::Tracked& ConnectionTracker::find_or_insert(const FlowKey& key, bool& fresh) {
  // Keep live + deleted slots under 3/4 of the table so probes stay short.
  if ((used_ + deleted_ + 1) * 4 > slots_.size() * 3)
    rehash(used_ * 4 > slots_.size() ? slots_.size() * 2 : slots_.size());
  std::size_t mask = slots_.size() - 1;
  Tracked* reuse = nullptr;
  for (std::size_t i = FlowKeyHash{}(key)&mask;; i = (i + 1) & mask) {
    Tracked& t = slots_[i];
    if (t.slot == Slot::kEmpty) {
      Tracked& dest = reuse ? *reuse : t;
      if (reuse) --deleted_;
      dest = Tracked{key, 0, Status::kPending, Slot::kUsed, {}};
      ++used_;
      fresh = true;
      return dest;
    }
    if (t.slot == Slot::kDeleted) {
      if (!reuse) reuse = &t;
    } else if (t.key == key) {
      fresh = false;
      return t;
    }
  }
}

void ConnectionTracker::rehash(std::size_t capacity) {
  std::vector<Tracked> old(capacity);
  old.swap(slots_);
  used_ = deleted_ = 0;
  for (auto& t : old) {
    if (t.slot != Slot::kUsed) continue;
    bool fresh;
    Tracked& n = find_or_insert(t.key, fresh);
    n = t;
  }
}

FlowID ConnectionTracker::event(const Tracked& t, FlowState state, TimePoint now) const {
  const FlowKey& key = t.key;
  FlowID f;
  f.origin = FlowOrigin::kLocal;  // a socket of this host (netlink, netstat, iperf)
  f.state = state;
  f.protocol = Protocol::kTcp;
  f.src = key.src;
  f.dst = key.dst;
  f.src_port = key.src_port;
  f.dst_port = key.dst_port;
  f.experiment = t.tag.experiment;
  f.activity = t.tag.activity;
  f.socket_cookie = t.cookie;  // the flow journal keeps it (a reused 4-tuple at a restart)
  if (state == FlowState::kEnd) {
    f.end_time = now;
    if (t.started != TimePoint{}) f.start_time = t.started;
  } else {
    f.start_time = now;
  }
  return f;
}

bool ConnectionTracker::renew_if_reused(Tracked& t, const Connection& c, TimePoint now,
                                        std::vector<FlowID>& out) {
  if (t.cookie == 0 || c.cookie == 0 || t.cookie == c.cookie) return false;
  if (t.status == Status::kStarted) {
    --started_;
    out.push_back(event(t, FlowState::kEnd, now));
  }
  t.status = Status::kPending;
  t.tag = {};
  t.untagged = false;
  t.cookie = c.cookie;
  return true;
}

const ConnectionTracker::Tracked* ConnectionTracker::find(const FlowKey& key) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = FlowKeyHash{}(key)&mask;; i = (i + 1) & mask) {
    const Tracked& t = slots_[i];
    if (t.slot == Slot::kEmpty) return nullptr;
    if (t.slot == Slot::kUsed && t.key == key) return &t;
  }
}

void ConnectionTracker::keep(const FlowKey& key) {
  if (const Tracked* t = find(key)) const_cast<Tracked*>(t)->generation = scans_ + 1;
}

void ConnectionTracker::observe(const Connection& c, TimePoint now, std::vector<FlowID>& out) {
  if (c.state == netlink::kTcpListen || c.remote_port == 0) return;
  FlowKey key{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
  // TIME-WAIT and request (NEW_SYN_RECV) sockets are not full sockets: the kernel reports no
  // state change of theirs, so the kernel plugin, which forgets a connection at its CLOSE event,
  // would follow one first seen in a dump for ever (and count it as tracked). Neither is ever
  // reported when first seen so; they only end (or renew) a connection already followed.
  if ((c.state == netlink::kTcpTimeWait || c.state == netlink::kTcpNewSynRecv) && !find(key))
    return;
  std::uint32_t gen = scans_ + 1;
  bool fresh = false;
  Tracked& t = find_or_insert(key, fresh);
  t.generation = gen;
  if (!fresh && renew_if_reused(t, c, now, out)) fresh = true;
  if (c.cookie) t.cookie = c.cookie;
  if (fresh) {
    if (!filter_.accepts(c.remote)) {
      t.status = Status::kIgnored;
      // One that would be reported but for the filter (not older than flowd, unless
      // report_existing), while open: a reload that lifts the exclusion starts it.
      t.untagged = (scans_ > 0 || report_existing_) &&
                   (until_close_ ? netlink::carries_data(c.state, c.inode)
                                 : c.state == netlink::kTcpEstablished);
    } else if (scans_ == 0 && !report_existing_) {
      // Connections older than flowd: their start was long ago, so the original keeps quiet about
      // them.
      t.status = Status::kAdopted;
    }
  }
  // The scanners: a connection is live while ESTABLISHED and ends at its first closing state. The
  // kernel plugin: live until CLOSE (netlink::carries_data), as its events say.
  const bool open =
      until_close_ ? netlink::carries_data(c.state, c.inode) : c.state == netlink::kTcpEstablished;
  const bool closing = until_close_ ? !open && netlink::is_closing_state(c.state)
                                    : netlink::is_closing_state(c.state);
  switch (t.status) {
    case Status::kPending:
      if (open) {
        start(t, c, now, out);
      } else if (closing) {
        t.status = Status::kIgnored;  // closed before we saw it established: nothing to report
      }
      break;
    case Status::kStarted:
      if (closing) {
        t.status = Status::kEnded;
        --started_;
        out.push_back(event(t, FlowState::kEnd, now));
      }
      break;
    default:
      if (closing) t.untagged = false;  // closing: nothing for a reload to report any more
      break;
  }
  if (until_close_ && closing) erase(t);
}

void ConnectionTracker::erase(Tracked& t) {
  t.slot = Slot::kDeleted;
  --used_;
  ++deleted_;
}

void ConnectionTracker::end_all(TimePoint now, std::vector<FlowID>& out) {
  for (auto& t : slots_)
    if (t.slot == Slot::kUsed && t.status == Status::kStarted) {
      t.status = Status::kEnded;
      --started_;
      out.push_back(event(t, FlowState::kEnd, now));
    }
}

void ConnectionTracker::end_excluded(TimePoint now, std::vector<FlowID>& out,
                                     std::vector<FlowKey>* ended) {
  for (auto& t : slots_) {
    if (t.slot != Slot::kUsed || filter_.accepts(t.key.dst)) continue;
    if (t.status == Status::kStarted) {
      --started_;
      out.push_back(event(t, FlowState::kEnd, now));
      if (ended) ended->push_back(t.key);
      t.untagged = true;  // open: a later reload that lifts the exclusion reports it again
    }
    t.status = Status::kIgnored;
  }
}

ConnectionTracker::Retagged ConnectionTracker::retag(TimePoint now, std::vector<FlowID>& out,
                                                     const Tagger* decide) {
  Retagged r;
  for (auto& t : slots_) {
    const bool untagged = t.status == Status::kIgnored && t.untagged;
    if (t.slot != Slot::kUsed || (t.status != Status::kStarted && !untagged)) continue;
    Connection c;
    c.local = t.key.src;
    c.remote = t.key.dst;
    c.local_port = t.key.src_port;
    c.remote_port = t.key.dst_port;
    c.cookie = t.cookie;
    c.comm = t.comm;
    bool retry = false;
    const auto tag = (decide ? *decide : tagger_)(c, retry);
    if (!tag && retry) continue;
    if (untagged) {
      if (!tag || !filter_.accepts(t.key.dst)) continue;
      t.tag = *tag;
      t.status = Status::kStarted;
      t.untagged = false;
      t.started = now;
      ++started_;
      out.push_back(event(t, FlowState::kStart, now));
      ++r.started;
      continue;
    }
    if (tag && tag->experiment == t.tag.experiment && tag->activity == t.tag.activity) continue;
    out.push_back(event(t, FlowState::kEnd, now));
    if (!tag) {
      --started_;
      t.status = Status::kIgnored;
      t.untagged = true;
      ++r.untagged;
      continue;
    }
    t.tag = *tag;
    t.started = now;
    out.push_back(event(t, FlowState::kStart, now));
    ++r.changed;
  }
  return r;
}

void ConnectionTracker::start(Tracked& t, const Connection& c, TimePoint now,
                              std::vector<FlowID>& out) {
  bool retry = false;
  auto tag = tagger_(c, retry);
  t.comm = c.comm;
  if (!tag) {
    if (!retry) {
      t.status = Status::kIgnored;
      t.untagged = true;
    }
    return;
  }
  t.tag = *tag;
  t.status = Status::kStarted;
  t.started = now;
  ++started_;
  out.push_back(event(t, FlowState::kStart, now));
}

bool ConnectionTracker::established(const Connection& c, TimePoint when, std::vector<FlowID>& out) {
  if (c.remote_port == 0) return false;
  FlowKey key{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
  bool fresh = false;
  Tracked& t = find_or_insert(key, fresh);
  // The generation of the last scan, not of the next: a resync scan that no longer lists the
  // connection (its end event was lost) ends it in finish().
  t.generation = scans_;
  if (!fresh && renew_if_reused(t, c, when, out)) fresh = true;
  if (c.cookie) t.cookie = c.cookie;
  if (fresh || t.status == Status::kEnded) {
    t.status = Status::kPending;
    if (!filter_.accepts(c.remote)) {
      t.status = Status::kIgnored;
      t.untagged = true;  // established: a reload that lifts the exclusion starts it
      return false;
    }
  }
  if (t.status == Status::kPending || t.status == Status::kAdopted) start(t, c, when, out);
  return t.status == Status::kStarted;
}

void ConnectionTracker::closed(const Connection& c, TimePoint when, std::vector<FlowID>& out) {
  FlowKey key{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
  bool fresh = false;
  Tracked& t = find_or_insert(key, fresh);
  // The late end of an earlier socket on this 4-tuple (a resync already ended it and found the
  // new one): not the end of the connection followed now.
  if (!fresh && t.cookie != 0 && c.cookie != 0 && t.cookie != c.cookie) return;
  if (t.status == Status::kStarted) {
    --started_;
    out.push_back(event(t, FlowState::kEnd, when));
  }
  erase(t);
}

void ConnectionTracker::take_over(ConnectionTracker&& predecessor) {
  if (scans_ != 0) return;
  slots_ = std::move(predecessor.slots_);
  used_ = std::exchange(predecessor.used_, 0);
  deleted_ = std::exchange(predecessor.deleted_, 0);
  scans_ = std::exchange(predecessor.scans_, 0);
  started_ = std::exchange(predecessor.started_, 0);
  predecessor.slots_ = std::vector<Tracked>(64);
}

std::size_t ConnectionTracker::inherit(std::span<const ActiveFlow> flows, std::string_view plugin) {
  if (scans_ != 0) return 0;
  std::size_t n = 0;
  for (const auto& f : flows) {
    if (f.origin != FlowOrigin::kLocal || f.key.protocol != Protocol::kTcp || !f.plugin ||
        plugin != f.plugin)
      continue;
    bool fresh = false;
    Tracked& t = find_or_insert(f.key, fresh);
    if (!fresh) continue;
    t.status = Status::kStarted;
    t.tag = Tag{f.experiment, f.activity};
    t.started = f.start;
    ++started_;
    ++n;
  }
  return n;
}

std::size_t ConnectionTracker::expect_restarts(std::span<const PendingRestart> restarts) {
  if (scans_ != 0) return 0;
  std::size_t n = 0;
  for (const auto& r : restarts) {
    if (r.key.protocol != Protocol::kTcp || !filter_.accepts(r.key.dst)) continue;
    bool fresh = false;
    Tracked& t = find_or_insert(r.key, fresh);
    if (!fresh) continue;
    // Pending and not fresh at the first scan: started if open (observe), not adopted. Of
    // generation 0, so that the first scan's finish() forgets it, unreported, if not listed.
    t.cookie = r.socket_cookie;
    ++n;
  }
  return n;
}

std::vector<FlowID> ConnectionTracker::started_flows(TimePoint now) const {
  std::vector<FlowID> out;
  out.reserve(started_);
  for (const auto& t : slots_)
    if (t.slot == Slot::kUsed && t.status == Status::kStarted)
      out.push_back(event(t, FlowState::kStart, now));
  return out;
}

void ConnectionTracker::finish(TimePoint now, std::vector<FlowID>& out) {
  std::uint32_t gen = ++scans_;
  for (auto& t : slots_) {
    if (t.slot != Slot::kUsed || t.generation == gen) continue;
    if (t.status == Status::kStarted) {
      --started_;
      out.push_back(event(t, FlowState::kEnd, now));
    }
    erase(t);
  }
  // A table that grew for a burst shrinks back once the connections are gone.
  if (slots_.size() > 64 && used_ * 8 < slots_.size())
    rehash(std::max<std::size_t>(64, slots_.size() / 4));
}

}  // namespace flowd::scanner
