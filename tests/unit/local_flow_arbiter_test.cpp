// SPDX-License-Identifier: Apache-2.0
// Two local plugins reporting one connection (issue 15): the four orders of an explicit report
// (np_api, api) and an inferred one (kernel, netlink...) on one 5-tuple, and what passes untouched.
#include "core/local_flow_arbiter.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/connection_check.hpp"

namespace flowd {
namespace {

using Rank = LocalFlowArbiter::Rank;
const TimePoint kT0 = TimePoint{} + std::chrono::hours(24 * 365 * 50);

FlowID flow(FlowState state, std::uint16_t exp, int at_s, FlowOrigin origin = FlowOrigin::kLocal) {
  FlowID f;
  f.origin = origin;
  f.state = state;
  f.protocol = Protocol::kTcp;
  f.src = *IpAddress::parse("2001:db8::1");
  f.dst = *IpAddress::parse("2001:db8::2");
  f.src_port = 5001;
  f.dst_port = 40000;
  f.experiment = exp;
  f.activity = 1;
  (state == FlowState::kEnd ? f.end_time : f.start_time) = kT0 + std::chrono::seconds(at_s);
  return f;
}

// "start kernel 2 @0" per event: state, plugin, experiment, the event's own time.
std::string said(const std::vector<FlowID>& out) {
  std::string s;
  for (const auto& f : out) {
    const auto t = f.state == FlowState::kEnd ? f.end_time : f.start_time;
    s += std::string(to_string(f.state)) + " " + f.plugin + " " + std::to_string(f.experiment) +
         " @" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*t - kT0).count()) +
         "; ";
  }
  return s;
}

struct Step {
  const char* plugin;
  Rank rank;
  FlowID f;
};

std::vector<std::string> run(const std::vector<Step>& steps, LocalFlowArbiter& a) {
  std::vector<std::string> per_step;
  for (const auto& s : steps) {
    std::vector<FlowID> out;
    a.arbitrate(std::span<const FlowID>(&s.f, 1), s.plugin, s.rank, out);
    per_step.push_back(said(out));
  }
  return per_step;
}

const Step kStart{"kernel", Rank::kInferred, flow(FlowState::kStart, 2, 0)};
const Step eStart{"np_api", Rank::kExplicit, flow(FlowState::kStart, 3, 2)};

TEST(LocalFlowArbiter, TheExplicitReportTakesOverAndHandsBack) {
  LocalFlowArbiter a;
  auto r = run({kStart,
                eStart,
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 9)}},
               a);
  EXPECT_EQ(r[0], "start kernel 2 @0; ");
  EXPECT_EQ(r[1], "end kernel 2 @2; start np_api 3 @2; ");
  EXPECT_EQ(r[2], "end np_api 3 @4; start kernel 2 @4; ");
  EXPECT_EQ(r[3], "end kernel 2 @9; ");
  EXPECT_EQ(a.size(), 0u);
}

TEST(LocalFlowArbiter, AnInferredEndWhileTheExplicitIsLiveIsHeld) {
  LocalFlowArbiter a;
  auto r = run({kStart,
                eStart,
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 3)},
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)}},
               a);
  EXPECT_EQ(r[2], "");
  EXPECT_EQ(r[3], "end np_api 3 @4; ");
  EXPECT_EQ(a.size(), 0u);
}

TEST(LocalFlowArbiter, AnInferredStartWhileTheExplicitIsLiveFollowsOnAfterIt) {
  LocalFlowArbiter a;
  auto r = run({{"np_api", Rank::kExplicit, flow(FlowState::kStart, 3, 0)},
                {"kernel", Rank::kInferred, flow(FlowState::kStart, 2, 1)},
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 9)}},
               a);
  EXPECT_EQ(r[0], "start np_api 3 @0; ");
  EXPECT_EQ(r[1], "");
  EXPECT_EQ(r[2], "end np_api 3 @4; start kernel 2 @4; ");
  EXPECT_EQ(r[3], "end kernel 2 @9; ");
}

TEST(LocalFlowArbiter, BothHeldBehindTheExplicitReport) {
  LocalFlowArbiter a;
  auto r = run({{"np_api", Rank::kExplicit, flow(FlowState::kStart, 3, 0)},
                {"kernel", Rank::kInferred, flow(FlowState::kStart, 2, 1)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 3)},
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)}},
               a);
  EXPECT_EQ(r[1], "");
  EXPECT_EQ(r[2], "");
  EXPECT_EQ(r[3], "end np_api 3 @4; ");
  EXPECT_EQ(a.size(), 0u);
}

TEST(LocalFlowArbiter, OneReportAloneAndOtherOriginsPassAsTheyAre) {
  LocalFlowArbiter a;
  auto r = run({kStart,
                {"kernel", Rank::kInferred, flow(FlowState::kStart, 2, 1)},
                {"kernel", Rank::kInferred, flow(FlowState::kOngoing, 2, 2)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 3)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 4)}},
               a);
  EXPECT_EQ(r[1], "start kernel 2 @1; ") << "a repeated start, as before";
  EXPECT_EQ(r[2], "ongoing kernel 2 @2; ");
  EXPECT_EQ(r[3], "end kernel 2 @3; ");
  EXPECT_EQ(r[4], "end kernel 2 @4; ") << "an end of an unknown flow passes";
  std::vector<FlowID> out;
  const FlowID observed = flow(FlowState::kStart, 2, 0, FlowOrigin::kObserved);
  a.arbitrate(std::span<const FlowID>(&observed, 1), "netflow", Rank::kInferred, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_STREQ(out[0].plugin, "netflow");
  EXPECT_EQ(a.size(), 0u);
}

// Issue 15, defect 3: a reload's successor of a connection plugin takes over every live report of
// that plugin, the one an explicit report hides from the backends included.
TEST(LocalFlowArbiter, ThePluginsLiveReportsIncludeTheHeldOnes) {
  LocalFlowArbiter a;
  run({eStart, kStart}, a);
  FlowID other = flow(FlowState::kStart, 2, 1);
  other.src_port = 5002;
  std::vector<FlowID> out;
  a.arbitrate(std::span<const FlowID>(&other, 1), "kernel", Rank::kInferred, out);
  auto live = a.live_reports("kernel");
  ASSERT_EQ(live.size(), 2u);
  EXPECT_STREQ(live[0].plugin, "kernel");
  EXPECT_EQ(live[0].experiment, 2);
  EXPECT_EQ(a.live_reports("np_api").size(), 1u);
  run({{"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 3)}}, a);
  EXPECT_EQ(a.live_reports("kernel").size(), 1u);
}

// The tally of each call: passed + held + dropped are the plugin's events, added the arbiter's.
TEST(LocalFlowArbiter, TalliesWhatBecomesOfEachEvent) {
  LocalFlowArbiter a;
  LocalFlowArbiter::Tally t;
  for (const auto& s :
       {eStart, kStart, Step{"kernel", Rank::kInferred, flow(FlowState::kOngoing, 2, 3)},
        Step{"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)}}) {
    std::vector<FlowID> out;
    a.arbitrate(std::span<const FlowID>(&s.f, 1), s.plugin, s.rank, out, &t);
  }
  using O = LocalFlowArbiter::Outcome;
  EXPECT_EQ(t.outcomes[static_cast<int>(O::kPassed)], 2u);
  EXPECT_EQ(t.outcomes[static_cast<int>(O::kHeld)], 1u);
  EXPECT_EQ(t.outcomes[static_cast<int>(O::kDropped)], 1u);
  EXPECT_EQ(t.outcomes[static_cast<int>(O::kAdded)], 1u);
}

TEST(LocalFlowArbiter, AnEndWithoutItsOwnLiveReportNeverEndsTheOthersFlow) {
  // A repeated end, an end without a start, a tool's end for a transfer it started before a
  // restart: each would end the kernel's live flow (found by a user's try, issue 15).
  LocalFlowArbiter a;
  auto r = run({kStart,
                eStart,
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)},
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 5)},
                {"api", Rank::kExplicit, flow(FlowState::kEnd, 3, 6)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 9)}},
               a);
  EXPECT_EQ(r[2], "end np_api 3 @4; start kernel 2 @4; ");
  EXPECT_EQ(r[3], "") << "a repeated end";
  EXPECT_EQ(r[4], "") << "an end that never had a start";
  EXPECT_EQ(r[5], "end kernel 2 @9; ");
  EXPECT_EQ(a.size(), 0u);
  // And the other way round: an inferred end without its start while the explicit one is live.
  r = run({eStart,
           {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 3)},
           {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)}},
          a);
  EXPECT_EQ(r[1], "");
  EXPECT_EQ(r[2], "end np_api 3 @4; ");
}

// A tool retries an `end` that went through (np_api or the api, issue 15): with no other report of
// the connection left, it passed as an end of a flow the backends no longer knew (an orphan end,
// its start time its end time). It is dropped as a repeated end is while the other report is live;
// an explicit start of the connection makes its end pass again.
TEST(LocalFlowArbiter, ARetriedEndOfAnEndedExplicitReportIsDropped) {
  using O = LocalFlowArbiter::Outcome;
  LocalFlowArbiter a;
  LocalFlowArbiter::Tally t;
  auto step = [&](const Step& s) {
    std::vector<FlowID> out;
    a.arbitrate(std::span<const FlowID>(&s.f, 1), s.plugin, s.rank, out, &t);
    return said(out);
  };
  const Step eEnd{"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)};
  EXPECT_EQ(step(eStart), "start np_api 3 @2; ");
  EXPECT_EQ(step(eEnd), "end np_api 3 @4; ");
  EXPECT_EQ(step({"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 5)}), "") << "a retry";
  EXPECT_EQ(step({"api", Rank::kExplicit, flow(FlowState::kEnd, 3, 6)}), "") << "the api's too";
  EXPECT_EQ(t.outcomes[static_cast<int>(O::kDropped)], 2u);
  EXPECT_EQ(t.outcomes[static_cast<int>(O::kPassed)], 2u);
  EXPECT_EQ(a.size(), 0u);

  // The kernel's report ended behind the explicit one, then the explicit one: no report is left.
  EXPECT_EQ(step(kStart), "start kernel 2 @0; ");
  EXPECT_EQ(step(eStart), "end kernel 2 @2; start np_api 3 @2; ");
  EXPECT_EQ(step({"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 3)}), "");
  EXPECT_EQ(step(eEnd), "end np_api 3 @4; ");
  EXPECT_EQ(step({"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 7)}), "") << "a retry";

  // A new transfer on the same 5-tuple: its start and end pass, and so would the kernel's ends.
  EXPECT_EQ(step({"np_api", Rank::kExplicit, flow(FlowState::kStart, 3, 10)}),
            "start np_api 3 @10; ");
  EXPECT_EQ(step({"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 11)}), "end np_api 3 @11; ");
  EXPECT_EQ(step({"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 12)}), "end kernel 2 @12; ")
      << "an inferred end of an unknown flow passes, as before";

  // A report ended by its plugin's removal: a retry of its end (the plugin back) is dropped too.
  EXPECT_EQ(step({"api", Rank::kExplicit, flow(FlowState::kStart, 5, 20)}), "start api 5 @20; ");
  std::vector<FlowID> out;
  a.forget("api", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(step({"api", Rank::kExplicit, flow(FlowState::kEnd, 5, 21)}), "");
  EXPECT_EQ(a.size(), 0u);
}

TEST(LocalFlowArbiter, NoEndIsStampedBeforeTheStartTheBackendsSaw) {
  // The kernel stamps its state change, np_api the line's reading: a hand-over between them once
  // gave ends before their starts (issue 15).
  LocalFlowArbiter a;
  auto r = run({{"kernel", Rank::kInferred, flow(FlowState::kStart, 2, 10)},
                {"np_api", Rank::kExplicit, flow(FlowState::kStart, 3, 5)},
                {"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 8)},
                {"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 9)}},
               a);
  EXPECT_EQ(r[1], "end kernel 2 @10; start np_api 3 @10; ");
  EXPECT_EQ(r[2], "end np_api 3 @10; start kernel 2 @10; ");
  EXPECT_EQ(r[3], "end kernel 2 @10; ");
}

TEST(LocalFlowArbiter, AConnectionIsKeyedAsTheMarkerKeysIt) {
  // Another of this host's addresses, or the IPv4-mapped form of the peer: the same connection
  // and the same map entry (the marker keys on the peer and the ports).
  LocalFlowArbiter a;
  FlowID other_local = flow(FlowState::kStart, 3, 2);
  other_local.src = *IpAddress::parse("2001:db8::99");
  auto r = run({kStart, {"np_api", Rank::kExplicit, other_local}}, a);
  EXPECT_EQ(r[1], "end kernel 2 @2; start np_api 3 @2; ");

  LocalFlowArbiter b;
  FlowID v4 = flow(FlowState::kStart, 2, 0);
  v4.src = *IpAddress::parse("198.18.0.1");
  v4.dst = *IpAddress::parse("198.18.0.2");
  FlowID mapped = flow(FlowState::kStart, 3, 1);
  mapped.src = *IpAddress::parse("::ffff:198.18.0.1");
  mapped.dst = *IpAddress::parse("::ffff:198.18.0.2");
  r = run({{"kernel", Rank::kInferred, v4}, {"np_api", Rank::kExplicit, mapped}}, b);
  EXPECT_EQ(r[1], "end kernel 2 @1; start np_api 3 @1; ");
  EXPECT_EQ(b.size(), 1u);
}

TEST(LocalFlowArbiter, AnEndSpelledOtherwiseEndsTheFlowItsStartGave) {
  // A tool's start with IPv4-mapped addresses and its end with plain ones: one connection, and the
  // backends (keyed by the 5-tuple) must get the end of the flow they started (a user's re-try).
  LocalFlowArbiter a;
  FlowID mapped = flow(FlowState::kStart, 3, 0);
  mapped.src = *IpAddress::parse("::ffff:198.18.0.1");
  mapped.dst = *IpAddress::parse("::ffff:198.18.0.2");
  FlowID plain = flow(FlowState::kEnd, 3, 4);
  plain.src = *IpAddress::parse("198.18.0.1");
  plain.dst = *IpAddress::parse("198.18.0.2");
  std::vector<FlowID> out;
  a.arbitrate(std::span<const FlowID>(&mapped, 1), "np_api", Rank::kExplicit, out);
  a.arbitrate(std::span<const FlowID>(&plain, 1), "np_api", Rank::kExplicit, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(FlowKey::of(out[1]), FlowKey::of(out[0]));
  EXPECT_EQ(out[1].state, FlowState::kEnd);
  EXPECT_EQ(a.size(), 0u);
}

TEST(LocalFlowArbiter, APluginRemovedEndsItsExplicitReportsAndHandsBack) {
  LocalFlowArbiter a;
  FlowID alone = flow(FlowState::kStart, 4, 3);
  alone.dst_port = 40001;
  FlowID by_api = flow(FlowState::kStart, 5, 3);
  by_api.dst_port = 40002;
  run({kStart, eStart, {"np_api", Rank::kExplicit, alone}, {"api", Rank::kExplicit, by_api}}, a);
  std::vector<FlowID> out;
  a.forget("np_api", out);
  std::string s = said(out);
  // Oldest first: the covered connection goes back to the kernel, the other just ends.
  EXPECT_NE(s.find("end np_api 3 @"), std::string::npos) << s;
  EXPECT_NE(s.find("start kernel 2 @"), std::string::npos) << s;
  EXPECT_NE(s.find("end np_api 4 @"), std::string::npos) << s;
  EXPECT_EQ(s.find(" 5 @"), std::string::npos) << "the api plugin's report stays: " << s;
  EXPECT_EQ(out.size(), 3u) << s;
  EXPECT_EQ(a.size(), 2u);  // the kernel's connection and the api's
  // The kernel's end now passes (it waited for ever before).
  auto r = run({{"kernel", Rank::kInferred, flow(FlowState::kEnd, 2, 9)}}, a);
  EXPECT_EQ(r[0].substr(0, 13), "end kernel 2 ");
}

// A real TCP connection on 127.0.0.1 (the server's end accepted): what the arbiter's connection
// check asks the kernel about.
struct LoopbackConnection {
  int listener = -1, client = -1, server = -1;
  std::uint16_t server_port = 0, client_port = 0;
  LoopbackConnection() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listener, 4) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    server_port = ntohs(a.sin_port);
    client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(client, reinterpret_cast<sockaddr*>(&a), len) != 0) return;
    sockaddr_in me{};
    socklen_t ml = sizeof me;
    ::getsockname(client, reinterpret_cast<sockaddr*>(&me), &ml);
    client_port = ntohs(me.sin_port);
    server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  }
  ~LoopbackConnection() { close_all(); }
  void close_all() {
    for (int* fd : {&server, &client, &listener})
      if (*fd >= 0) ::close(std::exchange(*fd, -1));
  }
  bool ok() const { return server >= 0; }
  // The flow as a connection plugin reports it: the server's end (this host's) first.
  FlowID flow(FlowState state, std::uint16_t exp, int at_s) const {
    FlowID f = ::flowd::flow(state, exp, at_s);
    f.src = f.dst = *IpAddress::parse("127.0.0.1");
    f.src_port = server_port;
    f.dst_port = client_port;
    return f;
  }
};

LocalFlowArbiter::StillOpen kernel_check() {
  return [check = std::make_shared<OpenConnectionCheck>()](const FlowID& f) { return (*check)(f); };
}

// try15d D6: the explicit report's end came before the kernel plugin's (which was being restarted
// by a reload) for a connection already closed; the hand-back started a flow for it that the
// plugin's late end ended at once (start = end): a phantom firefly pair and mark. The hand-back is
// made only when the kernel says the connection is still open.
TEST(LocalFlowArbiter, AConnectionIsHandedBackOnlyWhileTheKernelSaysItIsOpen) {
  LocalFlowArbiter a(kernel_check());
  LoopbackConnection open;
  ASSERT_TRUE(open.ok());
  auto r = run({{"kernel", Rank::kInferred, open.flow(FlowState::kStart, 2, 0)},
                {"np_api", Rank::kExplicit, open.flow(FlowState::kStart, 3, 2)},
                {"np_api", Rank::kExplicit, open.flow(FlowState::kEnd, 3, 4)}},
               a);
  EXPECT_EQ(r[2], "end np_api 3 @4; start kernel 2 @4; ") << "open: handed back";

  LoopbackConnection closed;
  ASSERT_TRUE(closed.ok());
  r = run({{"kernel", Rank::kInferred, closed.flow(FlowState::kStart, 2, 0)},
           {"np_api", Rank::kExplicit, closed.flow(FlowState::kStart, 3, 2)}},
          a);
  // The tool closes its connection, then reports its end; the kernel plugin's end is late.
  const FlowID start = closed.flow(FlowState::kStart, 2, 0);
  closed.close_all();
  OpenConnectionCheck check;
  for (int i = 0; i < 100 && check(start); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_FALSE(check(start)) << "the kernel still lists the closed connection as open";
  r = run({{"np_api", Rank::kExplicit, closed.flow(FlowState::kEnd, 3, 4)},
           {"kernel", Rank::kInferred, closed.flow(FlowState::kOngoing, 2, 5)},
           {"kernel", Rank::kInferred, closed.flow(FlowState::kEnd, 2, 3)}},
          a);
  EXPECT_EQ(r[0], "end np_api 3 @4; ") << "closed: not handed back";
  EXPECT_EQ(r[1], "") << "the closed report's events are not the backends'";
  EXPECT_EQ(r[2], "") << "its late end is dropped, its start never went out";
  // The open connection's report is the one left.
  EXPECT_EQ(a.size(), 1u);
  ASSERT_EQ(a.live_reports("kernel").size(), 1u);
  EXPECT_EQ(a.live_reports("kernel")[0].src_port, open.server_port);

  // A connection the kernel has no socket for at all (the listener gone too): not handed back.
  LocalFlowArbiter b(kernel_check());
  FlowID none = flow(FlowState::kStart, 2, 0);
  none.src = none.dst = *IpAddress::parse("127.0.0.1");
  none.src_port = closed.server_port;
  none.dst_port = 9;
  FlowID none_end = none;
  none_end.state = FlowState::kEnd;
  none_end.end_time = kT0 + std::chrono::seconds(4);
  FlowID tool = none;
  tool.experiment = 3;
  FlowID tool_end = none_end;
  tool_end.experiment = 3;
  r = run({{"kernel", Rank::kInferred, none},
           {"np_api", Rank::kExplicit, tool},
           {"np_api", Rank::kExplicit, tool_end}},
          b);
  EXPECT_EQ(r[2], "end np_api 3 @4; ");
  // The same 4-tuple reported again (a new connection on it) starts afresh.
  r = run({{"kernel", Rank::kInferred, none}}, b);
  EXPECT_EQ(r[0], "start kernel 2 @0; ");
}

// The same when np_api is removed by a reload while it covers a connection that closed.
TEST(LocalFlowArbiter, APluginRemovedHandsBackOnlyOpenConnections) {
  LocalFlowArbiter a(kernel_check());
  LoopbackConnection open, closed;
  ASSERT_TRUE(open.ok() && closed.ok());
  run({{"kernel", Rank::kInferred, open.flow(FlowState::kStart, 2, 0)},
       {"np_api", Rank::kExplicit, open.flow(FlowState::kStart, 3, 2)},
       {"kernel", Rank::kInferred, closed.flow(FlowState::kStart, 4, 0)},
       {"np_api", Rank::kExplicit, closed.flow(FlowState::kStart, 5, 2)}},
      a);
  const FlowID start = closed.flow(FlowState::kStart, 4, 0);
  closed.close_all();
  OpenConnectionCheck check;
  for (int i = 0; i < 100 && check(start); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::vector<FlowID> out;
  a.forget("np_api", out);
  const std::string s = said(out);
  EXPECT_NE(s.find("end np_api 3 @"), std::string::npos) << s;
  EXPECT_NE(s.find("start kernel 2 @"), std::string::npos) << s;
  EXPECT_NE(s.find("end np_api 5 @"), std::string::npos) << s;
  EXPECT_EQ(s.find("start kernel 4"), std::string::npos) << "closed: not handed back: " << s;
  EXPECT_EQ(out.size(), 3u) << s;
  auto r = run({{"kernel", Rank::kInferred, closed.flow(FlowState::kEnd, 4, 9)}}, a);
  EXPECT_EQ(r[0], "") << "its late end is dropped";
  EXPECT_EQ(a.size(), 1u);
}

// issue 15 E5: a backend that forgot a flow's start (udp_firefly's max_tracked_flows made smaller
// by a reload) sent its end with the end's time as start-time. Every end or ongoing the backends
// get carries the start time of the start they saw: the explicit start's, the hand-back's (not the
// connection's, which the inferring plugin's end carries).
TEST(LocalFlowArbiter, EveryEndCarriesTheStartTimeOfTheStartTheBackendsSaw) {
  LocalFlowArbiter a;
  auto step = [&](const Step& s) {
    std::vector<FlowID> out;
    a.arbitrate(std::span<const FlowID>(&s.f, 1), s.plugin, s.rank, out);
    return out;
  };
  auto at = [](const std::optional<TimePoint>& t) {
    return t ? std::chrono::duration_cast<std::chrono::seconds>(*t - kT0).count() : -1;
  };
  step(kStart);
  step(eStart);  // @2
  FlowID bare = flow(FlowState::kOngoing, 3, 3);
  bare.start_time.reset();  // a pipe line's ongoing has no start time
  auto ongoing = step({"np_api", Rank::kExplicit, bare});
  ASSERT_EQ(ongoing.size(), 1u);
  EXPECT_EQ(at(ongoing[0].start_time), 2);
  auto handed = step({"np_api", Rank::kExplicit, flow(FlowState::kEnd, 3, 4)});
  ASSERT_EQ(handed.size(), 2u);
  EXPECT_EQ(at(handed[0].start_time), 2) << "the tool's end: its start";
  EXPECT_EQ(at(handed[1].start_time), 4) << "the hand-back";
  FlowID kernel_end = flow(FlowState::kEnd, 2, 9);
  kernel_end.start_time = kT0;  // the connection's start, which the tracker puts on its end
  auto ended = step({"kernel", Rank::kInferred, kernel_end});
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(at(ended[0].start_time), 4) << "the start the backends saw: the hand-back";
  // One report alone: its end carries its start's time.
  step({"netlink", Rank::kInferred, flow(FlowState::kStart, 2, 20)});
  auto alone = step({"netlink", Rank::kInferred, flow(FlowState::kEnd, 2, 25)});
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(at(alone[0].start_time), 20);
}

}  // namespace
}  // namespace flowd
