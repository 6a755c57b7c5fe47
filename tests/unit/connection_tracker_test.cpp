// SPDX-License-Identifier: Apache-2.0
// The scanners' state machine and filters, on hand-made scans.
#include "plugins/scanner/connection_tracker.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <map>
#include <set>

#include "netlink/sock_diag.hpp"
#include "plugins/scanner/connection_filter.hpp"

namespace flowd::scanner {
namespace {

using namespace netlink;  // the TCP states (kTcpEstablished, ...)

Connection conn(const char* local, std::uint16_t lport, const char* remote, std::uint16_t rport,
                std::uint8_t state = kTcpEstablished) {
  Connection c;
  c.local = *IpAddress::parse(local);
  c.remote = *IpAddress::parse(remote);
  c.local_port = lport;
  c.remote_port = rport;
  c.state = state;
  c.inode = 1;
  return c;
}

Tagger fixed(std::uint16_t e, std::uint16_t a) {
  return [=](const Connection&, bool&) { return std::optional<Tag>(Tag{e, a}); };
}

ConnectionFilter no_private() {
  ConnectionFilter f;
  f.ignore_private = false;
  return f;
}

// Runs one scan and returns its events.
std::vector<FlowID> scan(ConnectionTracker& t, const std::vector<Connection>& conns) {
  std::vector<FlowID> out;
  auto now = Clock::now();
  for (const auto& c : conns) t.observe(c, now, out);
  t.finish(now, out);
  return out;
}

// A reload restarts the plugin: the flows its predecessor started (still in the daemon's status)
// are followed on, not adopted silently, so each start keeps its end — one that closed during the
// reload ends at the first scan, one still open when it closes; another plugin's flows and other
// origins are not taken.
TEST(ConnectionTracker, FlowsStartedBeforeAReloadGetTheirEnd) {
  ConnectionTracker t(no_private(), false, fixed(5, 5));
  auto open = conn("192.0.2.1", 40000, "203.0.113.5", 443);
  auto gone = conn("192.0.2.1", 40001, "203.0.113.5", 443);
  auto mine = [](const Connection& c, const char* plugin, FlowOrigin origin) {
    ActiveFlow f;
    f.key = FlowKey{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
    f.origin = origin;
    f.experiment = 2;
    f.activity = 9;
    f.plugin = plugin;
    f.start = TimePoint{} + std::chrono::seconds(c.local_port);
    return f;
  };
  auto other = conn("192.0.2.1", 40002, "203.0.113.5", 443);
  const std::vector<ActiveFlow> status{
      mine(open, "kernel", FlowOrigin::kLocal), mine(gone, "kernel", FlowOrigin::kLocal),
      mine(other, "np_api", FlowOrigin::kLocal), mine(other, "kernel", FlowOrigin::kRemote)};
  EXPECT_EQ(t.inherit(status, "kernel"), 2u);
  EXPECT_EQ(t.started(), 2u);
  auto ev = scan(t, {open, other});
  ASSERT_EQ(ev.size(), 1u) << "only the connection that closed during the reload ends";
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  EXPECT_EQ(ev[0].src_port, 40001);
  EXPECT_EQ(ev[0].experiment, 2);
  EXPECT_EQ(ev[0].activity, 9);
  EXPECT_EQ(ev[0].start_time, TimePoint{} + std::chrono::seconds(40001)) << "its start's time";
  auto closing = open;
  closing.state = kTcpFinWait1;
  ev = scan(t, {closing, other});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  EXPECT_EQ(ev[0].src_port, 40000);
  EXPECT_EQ(ev[0].experiment, 2) << "with the tag it started with";
  EXPECT_EQ(t.started(), 0u);
  EXPECT_EQ(t.inherit(status, "kernel"), 0u) << "only before the first scan";
}

TEST(ConnectionTracker, ExistingConnectionsAreAdoptedSilently) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  auto old = conn("192.0.2.1", 40000, "203.0.113.5", 443);
  EXPECT_TRUE(scan(t, {old}).empty());
  auto fresh = conn("192.0.2.1", 40001, "203.0.113.5", 443);
  auto ev = scan(t, {old, fresh});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kStart);
  EXPECT_EQ(ev[0].src_port, 40001);
  EXPECT_EQ(ev[0].dst.to_string(), "203.0.113.5");
  EXPECT_EQ(ev[0].experiment, 2);
  EXPECT_EQ(ev[0].activity, 9);
  EXPECT_TRUE(ev[0].start_time);
  // The adopted one vanishing ends nothing; the started one vanishing is an end.
  ev = scan(t, {});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  EXPECT_EQ(ev[0].src_port, 40001);
  EXPECT_TRUE(ev[0].end_time);
  EXPECT_EQ(t.tracked(), 0u);
}

// try15h D4: the connections the flow journal hands over to start again (a clean restart) start at
// the first scan with this tracker's tag, not the journal's; one its filter excludes, one its
// tagger does not tag, one closed meanwhile, and one on another socket than the journal's (its
// cookie) are not started; the others older than the tracker stay adopted silently.
TEST(ConnectionTracker, ConnectionsToStartAgainStartAtTheFirstScanAsItsTaggerSays) {
  ConnectionFilter filter = no_private();
  filter.internal.push_back(*net::parse_prefix("198.51.100.0/24"));
  ConnectionTracker t(filter, false, [](const Connection& c, bool&) {
    return c.local_port == 40003 ? std::nullopt : std::optional<Tag>(Tag{3, 3});
  });
  auto again = conn("192.0.2.1", 40000, "203.0.113.5", 443);
  auto internal = conn("192.0.2.1", 40001, "198.51.100.7", 443);
  auto closed = conn("192.0.2.1", 40002, "203.0.113.5", 443);
  auto untagged = conn("192.0.2.1", 40003, "203.0.113.5", 443);
  auto reused = conn("192.0.2.1", 40004, "203.0.113.5", 443);
  reused.cookie = 7;
  auto older = conn("192.0.2.1", 40005, "203.0.113.5", 443);
  auto key = [](const Connection& c) {
    return FlowKey{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
  };
  const std::vector<PendingRestart> restarts{
      {key(again), 0}, {key(internal), 0}, {key(closed), 0}, {key(untagged), 0}, {key(reused), 6}};
  EXPECT_EQ(t.expect_restarts(restarts), 4u) << "all but the internal one";
  auto ev = scan(t, {again, internal, untagged, reused, older});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kStart);
  EXPECT_EQ(ev[0].src_port, 40000);
  EXPECT_EQ(ev[0].experiment, 3);
  EXPECT_EQ(ev[0].activity, 3);
  EXPECT_EQ(t.started(), 1u);
  EXPECT_EQ(t.tracked(), 5u) << "the closed one forgotten";
  ev = scan(t, {});
  ASSERT_EQ(ev.size(), 1u) << "only the started one ends";
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  EXPECT_EQ(ev[0].src_port, 40000);
  EXPECT_EQ(t.expect_restarts(restarts), 0u) << "only before the first scan";
}

// The kernel reports no state change of a TIME-WAIT or request socket: one the adoption dump lists
// is not followed (the kernel plugin would keep it for ever), whatever report_existing says; a
// started connection going to TIME-WAIT still ends.
TEST(ConnectionTracker, TimeWaitAndRequestSocketsAreNeverFollowed) {
  for (bool report_existing : {false, true}) {
    ConnectionTracker t(no_private(), report_existing, fixed(2, 9));
    EXPECT_TRUE(scan(t, {conn("192.0.2.1", 1, "203.0.113.5", 443, kTcpTimeWait),
                         conn("192.0.2.1", 443, "203.0.113.6", 2, kTcpNewSynRecv)})
                    .empty());
    EXPECT_EQ(t.tracked(), 0u);
    std::vector<FlowID> out;
    auto c = conn("192.0.2.1", 3, "203.0.113.5", 443);
    t.established(c, Clock::now(), out);
    ASSERT_EQ(out.size(), 1u);
    c.state = kTcpTimeWait;
    auto ev = scan(t, {c});
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].state, FlowState::kEnd);
    EXPECT_EQ(t.started(), 0u);
  }
}

// A reload's successor takes what its predecessor followed: no second start for a started
// connection, its end still comes, the adopted one stays silent, and one the predecessor never saw
// is new (reported), not adopted, although it is the successor's first scan.
TEST(ConnectionTracker, ASuccessorTakesOverWhatItsPredecessorFollowed) {
  ConnectionTracker old(no_private(), false, fixed(2, 9));
  auto adopted = conn("192.0.2.1", 1, "203.0.113.5", 443);
  EXPECT_TRUE(scan(old, {adopted}).empty());
  std::vector<FlowID> out;
  auto started = conn("192.0.2.1", 2, "203.0.113.5", 443);
  old.established(started, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u);
  ConnectionTracker next(no_private(), false, fixed(3, 3));
  next.take_over(std::move(old));
  EXPECT_EQ(next.tracked(), 2u);
  EXPECT_EQ(next.started(), 1u);
  auto gap = conn("192.0.2.1", 3, "203.0.113.5", 443);
  auto ev = scan(next, {adopted, started, gap});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kStart);
  EXPECT_EQ(ev[0].src_port, 3);
  EXPECT_EQ(ev[0].experiment, 3) << "the successor's tagger";
  ev = scan(next, {adopted});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  EXPECT_EQ(ev[1].state, FlowState::kEnd);
}

TEST(ConnectionTracker, ReportExistingStartsThemAtTheFirstScan) {
  ConnectionTracker t(no_private(), true, fixed(3, 3));
  auto ev =
      scan(t, {conn("::1", 1, "2001:db8::1", 2), conn("::1", 3, "2001:db8::1", 4, kTcpSynSent)});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].src_port, 1);
  EXPECT_EQ(ev[0].family(), AF_INET6);
}

TEST(ConnectionTracker, StartsWhenEstablishedEndsWhenClosing) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  scan(t, {});
  auto c = conn("10.0.0.1", 5000, "10.0.0.2", 6000, kTcpSynSent);
  EXPECT_TRUE(scan(t, {c}).empty());
  c.state = kTcpEstablished;
  ASSERT_EQ(scan(t, {c}).size(), 1u);
  EXPECT_TRUE(scan(t, {c}).empty()) << "a start is reported once";
  c.state = kTcpFinWait1;
  auto ev = scan(t, {c});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  c.state = kTcpTimeWait;
  EXPECT_TRUE(scan(t, {c}).empty()) << "an end is reported once";
  EXPECT_TRUE(scan(t, {}).empty()) << "no second end when the closed connection disappears";
  EXPECT_EQ(t.started(), 0u);
}

TEST(ConnectionTracker, EventsStartAndEndWithTheirOwnTimes) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  auto old = conn("192.0.2.1", 40000, "203.0.113.5", 443);
  scan(t, {old});  // adopted
  std::vector<FlowID> out;
  auto when = Clock::now() - std::chrono::seconds(3);
  auto c = conn("192.0.2.1", 40001, "203.0.113.5", 443);
  t.established(c, when, out);
  t.established(c, when, out);
  ASSERT_EQ(out.size(), 1u) << "one start per connection";
  EXPECT_EQ(out[0].state, FlowState::kStart);
  EXPECT_EQ(out[0].start_time, when);
  EXPECT_EQ(out[0].origin, FlowOrigin::kLocal);
  // An event for a connection the adoption scan listed proves it newer than flowd: started.
  t.established(old, when, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].src_port, 40000);
  out.clear();
  t.closed(c, when + std::chrono::milliseconds(20), out);
  t.closed(c, when + std::chrono::milliseconds(30), out);
  ASSERT_EQ(out.size(), 1u) << "one end per connection";
  EXPECT_EQ(out[0].state, FlowState::kEnd);
  EXPECT_EQ(out[0].end_time, when + std::chrono::milliseconds(20));
  // issue 15 E5: the end carries its start's time, for a backend that forgot it.
  EXPECT_EQ(out[0].start_time, when);
  EXPECT_EQ(out[0].experiment, 2);
  EXPECT_EQ(t.tracked(), 1u) << "the closed connection is forgotten";
  // Filtered connections give nothing, and are forgotten at their close.
  ConnectionTracker p(ConnectionFilter{}, false, fixed(2, 9));
  scan(p, {});
  out.clear();
  auto priv = conn("10.0.0.1", 1, "10.0.0.2", 2);
  p.established(priv, when, out);
  p.closed(priv, when, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(p.tracked(), 0u);
}

TEST(ConnectionTracker, AResyncScanRepairsLostEvents) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  scan(t, {});
  std::vector<FlowID> out;
  auto a = conn("192.0.2.1", 1, "203.0.113.5", 443), b = conn("192.0.2.1", 2, "203.0.113.5", 443),
       c = conn("192.0.2.1", 3, "203.0.113.5", 443);
  t.established(a, Clock::now(), out);
  t.established(b, Clock::now(), out);
  ASSERT_EQ(out.size(), 2u);
  // Lost: a's end and c's start. The resync dump lists b and c.
  auto ev = scan(t, {b, c});
  ASSERT_EQ(ev.size(), 2u);
  std::map<std::uint16_t, FlowState> by_port{{ev[0].src_port, ev[0].state},
                                             {ev[1].src_port, ev[1].state}};
  EXPECT_EQ(by_port[1], FlowState::kEnd);
  EXPECT_EQ(by_port[3], FlowState::kStart);
  // A late (stale) start of c after the resync is not a second start.
  out.clear();
  t.established(c, Clock::now(), out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(t.started(), 2u);
}

// A 4-tuple reused within milliseconds, with events lost in between: the kernel's socket cookie
// tells the two sockets apart, so the first one's late end cannot end the second.
TEST(ConnectionTracker, TheSocketCookieTellsAReusedFourTupleFromTheConnectionBefore) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  scan(t, {});
  std::vector<FlowID> out;
  auto first = conn("192.0.2.1", 1, "203.0.113.5", 443), second = first;
  first.cookie = 10;
  second.cookie = 11;
  ASSERT_TRUE(t.established(first, Clock::now(), out));
  ASSERT_EQ(out.size(), 1u);
  // Lost: the first's end and the second's start. The resync dump lists the second socket.
  auto ev = scan(t, {second});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd) << "the first socket ended";
  EXPECT_EQ(ev[1].state, FlowState::kStart) << "the second is a connection of its own";
  // Each start carries its socket's cookie, which the flow journal keeps (try15g 3).
  EXPECT_EQ(out[0].socket_cookie, 10u);
  EXPECT_EQ(ev[1].socket_cookie, 11u);
  // The first socket's end arrives late: not the second's.
  out.clear();
  t.closed(first, Clock::now(), out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(t.started(), 1u);
  t.closed(second, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].state, FlowState::kEnd);
  EXPECT_EQ(t.started(), 0u);
  // Events alone: a start of another socket on a started 4-tuple ends the first and starts it.
  auto third = first;
  third.cookie = 12;
  out.clear();
  ASSERT_TRUE(t.established(first, Clock::now(), out));
  ASSERT_TRUE(t.established(third, Clock::now(), out));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].state, FlowState::kEnd);
  EXPECT_EQ(out[2].state, FlowState::kStart);
  EXPECT_EQ(t.started(), 1u);
  // Without cookies (netstat), as before: the one entry is the connection.
  auto plain = conn("192.0.2.1", 2, "203.0.113.5", 443);
  out.clear();
  t.established(plain, Clock::now(), out);
  t.closed(plain, Clock::now(), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].socket_cookie, 0u) << "none known";
}

// Issue 15 (defect 11): the kernel plugin gets no further event of a socket a resync lists past
// the states that carry data (TIME-WAIT, an orphaned FIN-WAIT-2: the kernel lists a TIME-WAIT
// socket with that substate and no inode), so the resync forgets it at once (ending it if started);
// before, it stayed tracked until a later resync no longer listed it, which might never come.
TEST(ConnectionTracker, EventDrivenTheResyncForgetsSocketsItFindsClosed) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  t.follow_until_close(true);
  scan(t, {});
  std::vector<FlowID> out;
  auto a = conn("192.0.2.1", 1, "203.0.113.5", 443), b = conn("192.0.2.1", 2, "203.0.113.5", 443);
  t.established(a, Clock::now(), out);
  t.established(b, Clock::now(), out);
  ASSERT_EQ(out.size(), 2u);
  a.state = kTcpFinWait2;
  a.inode = 0;
  b.state = kTcpTimeWait;
  auto ev = scan(t, {a, b});
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
  EXPECT_EQ(ev[1].state, FlowState::kEnd);
  EXPECT_EQ(t.tracked(), 0u) << "nothing left that no event will ever end";
  EXPECT_TRUE(scan(t, {a, b}).empty()) << "no second end";
  EXPECT_EQ(t.tracked(), 0u);
}

// Report try15c item 9: the kernel plugin's connection is live until CLOSE, so a half-closed one
// (the server answering in CLOSE-WAIT after the client's shutdown(SHUT_WR), the client receiving in
// FIN-WAIT-2) is neither ended nor forgotten by a resync that lists it so, and one whose start
// record was lost is started; its end is the kernel's CLOSE. The scanners keep ending a connection
// at its first closing state.
TEST(ConnectionTracker, EventDrivenAHalfClosedConnectionIsLiveUntilClose) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  t.follow_until_close(true);
  scan(t, {});
  std::vector<FlowID> out;
  auto server = conn("192.0.2.1", 5301, "203.0.113.5", 40000);
  auto client = conn("192.0.2.1", 40001, "203.0.113.5", 5301);
  t.established(server, Clock::now(), out);
  t.established(client, Clock::now(), out);
  ASSERT_EQ(out.size(), 2u);
  server.state = kTcpCloseWait;
  client.state = kTcpFinWait2;  // the process still holds it (an inode): it receives
  auto lost_start = conn("192.0.2.1", 5301, "203.0.113.5", 40002, kTcpLastAck);
  auto ev = scan(t, {server, client, lost_start});
  ASSERT_EQ(ev.size(), 1u) << "the half-closed connections go on";
  EXPECT_EQ(ev[0].state, FlowState::kStart);
  EXPECT_EQ(ev[0].dst_port, 40002) << "a live connection whose start record was lost";
  EXPECT_EQ(t.tracked(), 3u);
  for (auto s : {kTcpFinWait1, kTcpClosing, kTcpLastAck}) {
    server.state = s;
    EXPECT_TRUE(scan(t, {server, client, lost_start}).empty()) << tcp_state_name(s);
  }
  out.clear();
  server.state = client.state = lost_start.state = kTcpClose;
  t.closed(server, Clock::now(), out);
  t.closed(client, Clock::now(), out);
  t.closed(lost_start, Clock::now(), out);
  ASSERT_EQ(out.size(), 3u);
  for (const auto& e : out) EXPECT_EQ(e.state, FlowState::kEnd);
  EXPECT_EQ(t.tracked(), 0u);

  // The scanners (netlink, netstat): the first closing state ends it.
  ConnectionTracker polled(no_private(), false, fixed(2, 9));
  auto c = conn("192.0.2.1", 5301, "203.0.113.5", 40003);
  scan(polled, {});
  ASSERT_EQ(scan(polled, {c}).size(), 1u);
  c.state = kTcpCloseWait;
  ev = scan(polled, {c});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].state, FlowState::kEnd);
}

// Issue 15 (defects 8, 9): a plugin stopping without a successor ends what it started.
TEST(ConnectionTracker, EndAllEndsEveryStartedConnectionOnce) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  auto adopted = conn("192.0.2.1", 1, "203.0.113.5", 443);
  scan(t, {adopted});
  std::vector<FlowID> out;
  auto started = conn("192.0.2.1", 2, "203.0.113.5", 443);
  t.established(started, Clock::now(), out);
  out.clear();
  t.end_all(Clock::now(), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].state, FlowState::kEnd);
  EXPECT_EQ(out[0].src_port, 2);
  EXPECT_EQ(t.started(), 0u);
  out.clear();
  t.end_all(Clock::now(), out);
  EXPECT_TRUE(out.empty());
}

// Issue 15 (defect 7): a reload whose filter excludes a connection the predecessor started ends it.
TEST(ConnectionTracker, ASuccessorEndsWhatItsFilterNowExcludes) {
  ConnectionTracker old(no_private(), false, fixed(2, 9));
  scan(old, {});
  std::vector<FlowID> out;
  auto kept = conn("192.0.2.1", 1, "203.0.113.5", 443),
       gone = conn("192.0.2.1", 2, "198.19.0.2", 443);
  old.established(kept, Clock::now(), out);
  old.established(gone, Clock::now(), out);
  ASSERT_EQ(out.size(), 2u);
  ConnectionFilter narrower = no_private();
  std::string why;
  narrower.internal.push_back(*net::parse_network("198.19.0.0/24", why));
  ConnectionTracker next(narrower, false, fixed(2, 9));
  next.take_over(std::move(old));
  out.clear();
  std::vector<FlowKey> ended;
  next.end_excluded(Clock::now(), out, &ended);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].state, FlowState::kEnd);
  EXPECT_EQ(out[0].src_port, 2);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(next.started(), 1u);
  out.clear();
  next.closed(gone, Clock::now(), out);
  EXPECT_TRUE(out.empty()) << "its end came already";
}

// try16b F3: a reload that changed a local port's rule or the fixed tag left the connections the
// predecessor started with their old tag (and label) until they closed. retag() ends each one the
// tagger tags otherwise now and starts it again with its new tag; one no longer tagged just ends.
TEST(ConnectionTracker, ASuccessorRetagsWhatItsTaggerTagsOtherwiseNow) {
  auto by_port = [](std::map<std::uint16_t, Tag> rules) -> Tagger {
    return [rules](const Connection& c, bool&) -> std::optional<Tag> {
      auto it = rules.find(c.local_port);
      return it == rules.end() ? std::nullopt : std::optional<Tag>(it->second);
    };
  };
  ConnectionTracker old(no_private(), false,
                        by_port({{5001, {2, 9}}, {5002, {3, 4}}, {5003, {5, 1}}}));
  scan(old, {});
  std::vector<FlowID> out;
  const auto same = conn("192.0.2.1", 5001, "203.0.113.5", 40001),
             changed = conn("192.0.2.1", 5002, "203.0.113.5", 40002),
             dropped = conn("192.0.2.1", 5003, "203.0.113.5", 40003);
  for (const auto& c : {same, changed, dropped}) old.established(c, Clock::now(), out);
  ASSERT_EQ(out.size(), 3u);
  ConnectionTracker next(no_private(), false, by_port({{5001, {2, 9}}, {5002, {7, 2}}}));
  next.take_over(std::move(old));
  out.clear();
  const auto r = next.retag(Clock::now(), out);
  EXPECT_EQ(r.changed, 1u);
  EXPECT_EQ(r.untagged, 1u);
  std::string said;
  for (const auto& f : out)
    said += fmt::format("{} {} {}/{}; ", f.state == FlowState::kEnd ? "end" : "start", f.src_port,
                        f.experiment, f.activity);
  // The slots' order is the table's: the changed one's end comes right before its start.
  EXPECT_NE(said.find("end 5002 3/4; start 5002 7/2; "), std::string::npos) << said;
  EXPECT_NE(said.find("end 5003 5/1; "), std::string::npos) << said;
  EXPECT_EQ(out.size(), 3u) << said;
  EXPECT_EQ(next.started(), 2u);
  out.clear();
  EXPECT_EQ(next.retag(Clock::now(), out).changed, 0u) << "nothing more to change";
  EXPECT_TRUE(out.empty());
  next.closed(changed, Clock::now(), out);
  next.closed(dropped, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u) << "the dropped one's end came already";
  EXPECT_EQ(out[0].src_port, 5002);
  EXPECT_EQ(out[0].experiment, 7);
}

// try17a F1, F2: a reload that adds a rule starts the open connections it now tags (before, only
// those started already were asked again); a `decide` that says retry keeps a connection's tag as
// it is (the kernel plugin's owned connections, whose pair was drawn).
TEST(ConnectionTracker, ASuccessorStartsWhatItTagsNowAndKeepsWhatItsDeciderKeeps) {
  auto by_port = [](std::map<std::uint16_t, Tag> rules) -> Tagger {
    return [rules](const Connection& c, bool&) -> std::optional<Tag> {
      auto it = rules.find(c.local_port);
      return it == rules.end() ? std::nullopt : std::optional<Tag>(it->second);
    };
  };
  ConnectionTracker old(no_private(), false, by_port({{5001, {2, 9}}}));
  scan(old, {});
  std::vector<FlowID> out;
  const auto kept = conn("192.0.2.1", 5001, "203.0.113.5", 40001),
             untagged = conn("192.0.2.1", 5004, "203.0.113.5", 40004);
  old.established(kept, Clock::now(), out);
  old.established(untagged, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u) << "5004 has no rule yet";
  ConnectionTracker next(no_private(), false, by_port({{5001, {3, 4}}, {5004, {7, 2}}}));
  next.take_over(std::move(old));
  out.clear();
  Tagger keep_5001 = [](const Connection& c, bool& keep) -> std::optional<Tag> {
    if (c.local_port == 5001) {
      keep = true;
      return std::nullopt;
    }
    return Tag{7, 2};
  };
  const auto r = next.retag(Clock::now(), out, &keep_5001);
  EXPECT_EQ(r.started, 1u);
  EXPECT_EQ(r.changed, 0u) << "5001 kept by the decider";
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].state, FlowState::kStart);
  EXPECT_EQ(out[0].src_port, 5004);
  EXPECT_EQ(out[0].experiment, 7);
  EXPECT_EQ(next.started(), 2u);
  out.clear();
  next.closed(untagged, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u) << "started by the retag, ended at its close";
  EXPECT_EQ(out[0].state, FlowState::kEnd);
}

// try17b F1: a reload that lifts an exclusion starts the open connections it excluded, those
// excluded from their start as those a reload ended; none adopted at flowd's start.
TEST(ConnectionTracker, ASuccessorStartsWhatItsFilterNoLongerExcludes) {
  std::string why;
  ConnectionFilter narrow = no_private();
  narrow.internal.push_back(*net::parse_network("198.19.0.0/24", why));
  const auto adopted = conn("192.0.2.1", 1, "198.19.0.9", 443),
             excluded = conn("192.0.2.1", 2, "198.19.0.2", 443),
             ended = conn("192.0.2.1", 3, "198.19.0.3", 443);
  ConnectionTracker first(no_private(), false, fixed(2, 9));
  scan(first, {adopted});  // older than flowd: adopted, never reported
  std::vector<FlowID> out;
  first.established(ended, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u);
  ConnectionTracker second(narrow, false, fixed(2, 9));
  second.take_over(std::move(first));
  out.clear();
  second.end_excluded(Clock::now(), out);
  ASSERT_EQ(out.size(), 1u) << "the reload's exclusion ends it";
  second.established(excluded, Clock::now(), out);
  ASSERT_EQ(out.size(), 1u) << "excluded from its start";
  ConnectionTracker third(no_private(), false, fixed(2, 9));
  third.take_over(std::move(second));
  out.clear();
  const auto r = third.retag(Clock::now(), out);
  EXPECT_EQ(r.started, 2u);
  std::set<int> started;
  for (const auto& f : out)
    if (f.state == FlowState::kStart) started.insert(f.src_port);
  EXPECT_EQ(started, (std::set<int>{2, 3})) << "not the adopted one";
}

TEST(ConnectionTracker, ClosedBeforeEstablishedIsNeverReported) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  scan(t, {});
  auto c = conn("10.0.0.1", 5000, "10.0.0.2", 6000, kTcpSynSent);
  scan(t, {c});
  c.state = kTcpClose;
  EXPECT_TRUE(scan(t, {c}).empty());
  c.state = kTcpEstablished;
  EXPECT_TRUE(scan(t, {c}).empty());
}

TEST(ConnectionTracker, ListenersAreIgnored) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  scan(t, {});
  EXPECT_TRUE(scan(t, {conn("0.0.0.0", 80, "0.0.0.0", 0, kTcpListen)}).empty());
  EXPECT_EQ(t.tracked(), 0u);
}

TEST(ConnectionTracker, FiltersInternalAndPrivateDestinations) {
  ConnectionFilter f;
  f.ignore_private = true;
  f.internal.push_back(*net::parse_prefix("192.0.2.0/24"));  // public for this test's purposes
  ConnectionTracker t(f, false, fixed(2, 9));
  scan(t, {});
  auto ev = scan(t, {conn("1.2.3.4", 1, "192.168.1.1", 80), conn("1.2.3.4", 2, "fd00::1", 80),
                     conn("1.2.3.4", 3, "192.0.2.7", 80), conn("1.2.3.4", 4, "8.8.8.8", 80),
                     conn("2001:4860::1", 5, "2001:4860::2", 80)});
  ASSERT_EQ(ev.size(), 2u);
  std::set<int> ports{ev[0].src_port, ev[1].src_port};
  EXPECT_EQ(ports, (std::set<int>{4, 5}));
}

TEST(ConnectionTracker, TaggerDecidesAndMayRetry) {
  int calls = 0;
  Tagger by_port = [&](const Connection& c, bool& retry) -> std::optional<Tag> {
    ++calls;
    if (c.local_port == 1094) return Tag{3, 3};
    retry = c.inode == 0;
    return std::nullopt;
  };
  ConnectionTracker t(no_private(), false, by_port);
  scan(t, {});
  auto cms = conn("1.2.3.4", 1094, "5.6.7.8", 5555);
  auto other = conn("1.2.3.4", 8080, "5.6.7.8", 5556);
  auto unowned = conn("1.2.3.4", 8081, "5.6.7.8", 5557);
  unowned.inode = 0;
  auto ev = scan(t, {cms, other, unowned});
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].experiment, 3);
  EXPECT_EQ(calls, 3);
  scan(t, {cms, other, unowned});
  EXPECT_EQ(calls, 4) << "only the connection the tagger could not decide is asked again";
}

// What the kernel plugin writes into a marker's map that appeared while it ran: the started
// connections only, with their tags (not the adopted, nor the untagged, nor the ended).
TEST(ConnectionTracker, StartedFlowsAreTheReportedLiveOnes) {
  Tagger by_port = [](const Connection& c, bool&) -> std::optional<Tag> {
    if (c.local_port == 8080) return std::nullopt;
    return Tag{static_cast<std::uint16_t>(c.local_port % 100), 9};
  };
  ConnectionTracker t(no_private(), false, by_port);
  auto adopted = conn("2001:db8::1", 5201, "2001:db8::2", 40000);
  scan(t, {adopted});
  auto a = conn("2001:db8::1", 5202, "2001:db8::2", 40001);
  auto b = conn("2001:db8::1", 5203, "2001:db8::2", 40002);
  auto untagged = conn("2001:db8::1", 8080, "2001:db8::2", 40003);
  auto gone = conn("2001:db8::1", 5204, "2001:db8::2", 40004);
  EXPECT_EQ(scan(t, {adopted, a, b, untagged, gone}).size(), 3u);
  EXPECT_EQ(scan(t, {adopted, a, b, untagged}).size(), 1u) << "gone's end";
  std::map<int, int> experiment_by_port;
  for (const auto& f : t.started_flows(Clock::now())) {
    EXPECT_EQ(f.state, FlowState::kStart);
    EXPECT_EQ(f.origin, FlowOrigin::kLocal);
    EXPECT_EQ(f.dst, a.remote);
    EXPECT_EQ(f.activity, 9);
    experiment_by_port[f.src_port] = f.experiment;
  }
  EXPECT_EQ(experiment_by_port, (std::map<int, int>{{5202, 2}, {5203, 3}}));
}

TEST(ConnectionTracker, ManyConnectionsComeAndGo) {
  ConnectionTracker t(no_private(), false, fixed(2, 9));
  scan(t, {});
  auto make = [](int i) {
    Connection c = conn("2001:db8::1", static_cast<std::uint16_t>(1024 + i % 60000), "2001:db8::2",
                        static_cast<std::uint16_t>(443 + i / 60000));
    return c;
  };
  std::vector<Connection> all;
  for (int i = 0; i < 20000; ++i) all.push_back(make(i));
  EXPECT_EQ(scan(t, all).size(), 20000u);
  EXPECT_TRUE(scan(t, all).empty()) << "a second scan of the same connections reports nothing";
  EXPECT_EQ(t.tracked(), 20000u);
  // Every other one goes, the rest stay; then new ones come (reusing freed slots).
  std::vector<Connection> half;
  for (int i = 0; i < 20000; i += 2) half.push_back(all[static_cast<std::size_t>(i)]);
  auto ev = scan(t, half);
  EXPECT_EQ(ev.size(), 10000u);
  for (const auto& e : ev) EXPECT_EQ(e.state, FlowState::kEnd);
  for (int i = 20000; i < 25000; ++i) half.push_back(make(i));
  ev = scan(t, half);
  EXPECT_EQ(ev.size(), 5000u);
  for (const auto& e : ev) EXPECT_EQ(e.state, FlowState::kStart);
  EXPECT_EQ(t.tracked(), 15000u);
  EXPECT_EQ(t.started(), 15000u);
  EXPECT_EQ(scan(t, {}).size(), 15000u);
  EXPECT_EQ(t.tracked(), 0u);
  EXPECT_EQ(scan(t, {all[0]}).size(), 1u) << "the table shrank and still works";
}

TEST(ConnectionFilter, PrivateMatchesPython) {
  for (const char* a : {"10.1.2.3", "127.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.1.1",
                        "198.18.0.1", "198.19.255.1", "::1", "fd00::1", "fe80::1", "2001:db8::1"})
    EXPECT_TRUE(is_private_address(*IpAddress::parse(a))) << a;
  for (const char* a : {"8.8.8.8", "172.32.0.1", "198.20.0.1", "2001:4860::1", "100.64.0.1"})
    EXPECT_FALSE(is_private_address(*IpAddress::parse(a))) << a;
}

TEST(ConnectionFilter, Prefixes) {
  auto p = net::parse_prefix("192.168.0.0/16");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->contains(*IpAddress::parse("192.168.200.1")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("192.169.0.1")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("::ffff:192.168.0.1")));
  auto host = net::parse_prefix("fd00::7");
  ASSERT_TRUE(host);
  EXPECT_EQ(host->length, 128u);
  auto odd = net::parse_prefix("fd00::/9");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(*IpAddress::parse("fd7f::1")));
  EXPECT_FALSE(odd->contains(*IpAddress::parse("fd80::1")));
  for (const char* bad :
       {"", "/8", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "nonsense/8"})
    EXPECT_FALSE(net::parse_prefix(bad)) << bad;
}

// Report try15d D5: an IPv4-mapped network (as `ss` prints a dual-stack socket's IPv4 peer) is
// the IPv4 network it names, since flowd sees every such peer as IPv4; before, it was kept as an
// IPv6 prefix that no connection ever matched, and excluded nothing.
TEST(ConnectionFilter, AnIpv4MappedNetworkIsTheIpv4Network) {
  std::string why;
  auto mapped = net::parse_network("::ffff:198.18.16.0/120", why);
  ASSERT_TRUE(mapped) << why;
  EXPECT_TRUE(mapped->address.is_v4());
  EXPECT_EQ(mapped->address.to_string(), "198.18.16.0");
  EXPECT_EQ(mapped->length, 24u);
  ConnectionFilter f = no_private();
  f.internal.push_back(*mapped);
  EXPECT_FALSE(f.accepts(*IpAddress::parse("198.18.16.2"))) << "excluded, as 198.18.16.0/24";
  EXPECT_TRUE(f.accepts(*IpAddress::parse("198.18.17.2")));
  auto host = net::parse_network("::ffff:198.18.16.7", why);
  ASSERT_TRUE(host) << why;
  EXPECT_EQ(host->address.to_string(), "198.18.16.7");
  EXPECT_EQ(host->length, 32u);
  auto all = net::parse_network("::ffff:0:0/96", why);
  ASSERT_TRUE(all) << why;
  EXPECT_TRUE(all->address.is_v4());
  EXPECT_EQ(all->length, 0u);
  EXPECT_FALSE(net::parse_network("::ffff:198.18.16.7/120", why));
  EXPECT_EQ(why, "has host bits set (the network is ::ffff:198.18.16.0/120)");
  auto v6 = net::parse_network("fd00::/8", why);
  ASSERT_TRUE(v6) << why;
  EXPECT_TRUE(v6->address.is_v6()) << "other IPv6 networks stay IPv6";
}

}  // namespace
}  // namespace flowd::scanner
