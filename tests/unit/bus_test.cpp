// SPDX-License-Identifier: Apache-2.0
// The bounded per-backend EventQueue and the fan-out Bus with its self-metrics.
#include <gtest/gtest.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>

#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/bus.hpp"
#include "flowd/event_queue.hpp"
#include "registry_metrics.hpp"

namespace flowd {
namespace {

FlowID make_flow(std::uint16_t src_port, FlowState state = FlowState::kStart,
                 const char* plugin = "np_api", FlowOrigin origin = FlowOrigin::kLocal) {
  FlowID f;
  f.origin = origin;
  f.state = state;
  f.src = *IpAddress::parse("192.0.2.1");
  f.dst = *IpAddress::parse("192.0.2.2");
  f.src_port = src_port;
  f.dst_port = 443;
  f.plugin = plugin;
  return f;
}

// ---------------------------------------------------------------------------------------------
// EventQueue.

TEST(EventQueue, BoundedPushFailsWhenFull) {
  EventQueue q(3);
  EXPECT_EQ(q.capacity(), 3u);
  EXPECT_TRUE(q.push(make_flow(1)));
  EXPECT_TRUE(q.push(make_flow(2)));
  EXPECT_TRUE(q.push(make_flow(3)));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_FALSE(q.push(make_flow(4)));
  EXPECT_EQ(q.size(), 3u);

  std::vector<FlowID> out;
  ASSERT_TRUE(q.pop_batch(out, 10, {}));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].src_port, 1);  // in order
  EXPECT_EQ(out[1].src_port, 2);
  EXPECT_EQ(out[2].src_port, 3);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_TRUE(q.push(make_flow(5)));  // room again
}

TEST(EventQueue, ZeroCapacityMeansOne) {
  EventQueue q(0);
  EXPECT_EQ(q.capacity(), 1u);
  EXPECT_TRUE(q.push(make_flow(1)));
  EXPECT_FALSE(q.push(make_flow(2)));
}

TEST(EventQueue, PopBatchTakesAtMostMax) {
  EventQueue q(10);
  for (std::uint16_t p = 1; p <= 5; ++p) ASSERT_TRUE(q.push(make_flow(p)));
  std::vector<FlowID> out{make_flow(999)};  // cleared first
  ASSERT_TRUE(q.pop_batch(out, 2, {}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].src_port, 1);
  EXPECT_EQ(out[1].src_port, 2);
  EXPECT_EQ(q.size(), 3u);
  ASSERT_TRUE(q.pop_batch(out, 2, {}));
  EXPECT_EQ(out[0].src_port, 3);
  ASSERT_TRUE(q.pop_batch(out, 2, {}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].src_port, 5);
}

TEST(EventQueue, CloseThenDrain) {
  EventQueue q(10);
  ASSERT_TRUE(q.push(make_flow(1)));
  ASSERT_TRUE(q.push(make_flow(2)));
  EXPECT_FALSE(q.closed());
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.push(make_flow(3)));  // no pushes after close
  EXPECT_EQ(q.size(), 2u);

  std::vector<FlowID> out;
  ASSERT_TRUE(q.pop_batch(out, 1, {}));
  EXPECT_EQ(out.at(0).src_port, 1);
  ASSERT_TRUE(q.pop_batch(out, 1, {}));
  EXPECT_EQ(out.at(0).src_port, 2);
  EXPECT_FALSE(q.pop_batch(out, 1, {}));  // closed and drained
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(q.pop_batch(out, 1, {}));  // and stays so
}

TEST(EventQueue, StopTokenWakesAWaitingPop) {
  EventQueue q(10);
  std::promise<bool> result;
  std::jthread consumer([&](std::stop_token st) {
    std::vector<FlowID> out;
    result.set_value(q.pop_batch(out, 10, st));
  });
  auto fut = result.get_future();
  consumer.request_stop();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(fut.get());
  EXPECT_FALSE(q.closed());
}

TEST(EventQueue, StopTokenAlreadyRequested) {
  EventQueue q(10);
  std::stop_source src;
  src.request_stop();
  std::vector<FlowID> out;
  EXPECT_FALSE(q.pop_batch(out, 10, src.get_token()));
}

TEST(EventQueue, PushWakesAWaitingPop) {
  EventQueue q(10);
  std::promise<std::vector<FlowID>> result;
  std::jthread consumer([&](std::stop_token st) {
    std::vector<FlowID> out;
    if (!q.pop_batch(out, 10, st)) out.clear();
    result.set_value(out);
  });
  auto fut = result.get_future();
  ASSERT_TRUE(q.push(make_flow(42)));
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto got = fut.get();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].src_port, 42);
}

TEST(EventQueue, CloseWakesAWaitingPop) {
  EventQueue q(10);
  std::promise<bool> result;
  std::jthread consumer([&](std::stop_token st) {
    std::vector<FlowID> out;
    result.set_value(q.pop_batch(out, 10, st));
  });
  auto fut = result.get_future();
  q.close();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(fut.get());
}

TEST(EventQueue, PopBatchUntilReturnsAtTheDeadline) {
  EventQueue q(8);
  std::vector<FlowID> out;
  std::stop_source src;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(q.pop_batch_until(out, 4, src.get_token(), t0 + std::chrono::milliseconds(50)));
  EXPECT_TRUE(out.empty());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
  ASSERT_TRUE(q.push(make_flow(1)));
  EXPECT_TRUE(q.pop_batch_until(out, 4, src.get_token(),
                                std::chrono::steady_clock::now() + std::chrono::hours(1)));
  EXPECT_EQ(out.size(), 1u);
  src.request_stop();
  EXPECT_FALSE(q.pop_batch_until(out, 4, src.get_token(),
                                 std::chrono::steady_clock::now() + std::chrono::hours(1)));
  std::stop_source fresh;
  q.close();
  EXPECT_FALSE(q.pop_batch_until(out, 4, fresh.get_token(), std::chrono::steady_clock::now()));
}

// What the consumer processed: the batches it took before its latest pop (the flow journal keeps
// a recovered report until then, try15i A).
TEST(EventQueue, WhatTheConsumerTookIsProcessedWhenItComesBackForMore) {
  EventQueue q(8);
  FlowID f;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.push(f));
  EXPECT_EQ(q.pushed(), 3u);
  std::vector<FlowID> batch;
  ASSERT_TRUE(q.pop_batch(batch, 2, {}));
  EXPECT_EQ(q.processed(), 0u) << "taken, not yet processed";
  EXPECT_FALSE(q.wait_until_processed(
      2, {}, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
  auto waiter = std::async(std::launch::async, [&] {
    return q.wait_until_processed(3, {},
                                  std::chrono::steady_clock::now() + std::chrono::seconds(5));
  });
  ASSERT_TRUE(q.pop_batch(batch, 2, {}));
  EXPECT_EQ(q.processed(), 2u);
  q.close();
  EXPECT_FALSE(q.pop_batch(batch, 2, {})) << "closed and drained";
  EXPECT_EQ(q.processed(), 3u);
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(waiter.get()) << "woken by the pop that marked the last one processed";
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(q.wait_until_processed(4, stop.get_token(),
                                      std::chrono::steady_clock::now() + std::chrono::seconds(5)))
      << "a stop cuts the wait short";
}

// A producer that may wait (the flow journal's recovered flows at a start) is woken by the pop that
// makes room, and gives up at its deadline, a stop or a close.
TEST(EventQueue, WaitForRoomWakesAtAPopAndGivesUpAtTheDeadlineAStopOrAClose) {
  EventQueue q(2);
  ASSERT_TRUE(q.push(make_flow(1)));
  EXPECT_TRUE(q.wait_for_room({}, std::chrono::steady_clock::now())) << "room already";
  ASSERT_TRUE(q.push(make_flow(2)));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.wait_for_room({}, t0 + std::chrono::milliseconds(50)));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(50));
  auto fut = std::async(std::launch::async, [&] {
    return q.wait_for_room({}, std::chrono::steady_clock::now() + std::chrono::hours(1));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::vector<FlowID> out;
  ASSERT_TRUE(q.pop_batch(out, 1, {}));
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(fut.get());
  ASSERT_TRUE(q.push(make_flow(3)));
  std::stop_source stop;
  auto stopped = std::async(std::launch::async, [&] {
    return q.wait_for_room(stop.get_token(),
                           std::chrono::steady_clock::now() + std::chrono::hours(1));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop.request_stop();
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(stopped.get());
  auto closed = std::async(std::launch::async, [&] {
    return q.wait_for_room({}, std::chrono::steady_clock::now() + std::chrono::hours(1));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  q.close();
  ASSERT_EQ(closed.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(closed.get());
}

TEST(EventQueue, DepthGaugeFollowsSize) {
  prometheus::Registry reg;
  auto& fam = prometheus::BuildGauge().Name("depth").Help("h").Register(reg);
  auto& g = fam.Add({});
  EventQueue q(10);
  q.set_depth_gauge(&g);
  q.push(make_flow(1));
  q.push(make_flow(2));
  q.push(make_flow(3));
  EXPECT_EQ(g.Value(), 3.0);
  std::vector<FlowID> out;
  q.pop_batch(out, 2, {});
  EXPECT_EQ(g.Value(), 1.0);
  q.pop_batch(out, 2, {});
  EXPECT_EQ(g.Value(), 0.0);
}

TEST(EventQueue, ManyProducersOneConsumer) {
  constexpr int kProducers = 4;
  constexpr int kEach = 2000;
  EventQueue q(kProducers * kEach);
  std::vector<std::jthread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&q, p] {
      for (int i = 0; i < kEach; ++i)
        EXPECT_TRUE(q.push(make_flow(static_cast<std::uint16_t>(p * kEach + i))));
    });
  std::vector<int> seen(kProducers * kEach, 0);
  std::size_t got = 0;
  std::vector<FlowID> out;
  while (got < seen.size() && q.pop_batch(out, 256, {})) {
    for (const auto& f : out) ++seen.at(f.src_port);
    got += out.size();
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(got, seen.size());
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << i;
}

// ---------------------------------------------------------------------------------------------
// Bus.

using test::metric_value;

TEST(Bus, FansOutToEveryQueueAndCountsDrops) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto np = bus.publisher("np_api");
  auto a = bus.make_queue("udp_firefly", 8);
  auto b = bus.make_queue("prometheus", 8);
  auto c = bus.make_queue("slow", 1);
  bus.set_subscribers({{"udp_firefly", a}, {"prometheus", b}, {"slow", c}});

  // Series exist (at 0) as soon as the queues do.
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "slow"}}), 0.0);

  np->publish(make_flow(1, FlowState::kStart));
  np->publish(make_flow(2, FlowState::kEnd));
  np->publish(make_flow(3, FlowState::kStart));

  EXPECT_EQ(a->size(), 3u);
  EXPECT_EQ(b->size(), 3u);
  EXPECT_EQ(c->size(), 1u);
  EXPECT_EQ(bus.published(), 3u);
  EXPECT_EQ(bus.dropped(), 2u);

  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "slow"}}), 2.0);
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "udp_firefly"}}), 0.0);
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "prometheus"}}), 0.0);
  EXPECT_EQ(metric_value(reg, "flowd_bus_queue_depth", {{"backend", "udp_firefly"}}), 3.0);
  EXPECT_EQ(metric_value(reg, "flowd_bus_queue_depth", {{"backend", "slow"}}), 1.0);

  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "start"}}),
            2.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "end"}}),
            1.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "ongoing"}}),
            0.0);

  // Every queue got the same events, in order.
  for (const auto& q : {a, b}) {
    std::vector<FlowID> out;
    ASSERT_TRUE(q->pop_batch(out, 10, {}));
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].src_port, 1);
    EXPECT_EQ(out[1].src_port, 2);
    EXPECT_EQ(out[1].state, FlowState::kEnd);
    EXPECT_EQ(out[2].src_port, 3);
  }
  std::vector<FlowID> out;
  ASSERT_TRUE(c->pop_batch(out, 10, {}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].src_port, 1);
  EXPECT_EQ(metric_value(reg, "flowd_bus_queue_depth", {{"backend", "slow"}}), 0.0);
}

TEST(Bus, CountsEventsPerPlugin) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto np = bus.publisher("np_api");
  auto q = bus.make_queue("udp_firefly", 100);
  bus.set_subscribers({{"udp_firefly", q}});
  static const char kOther[] = "netflow";
  auto nf = bus.publisher(kOther);
  np->publish(make_flow(1, FlowState::kStart, "np_api"));
  nf->publish(make_flow(2, FlowState::kOngoing, kOther, FlowOrigin::kObserved));
  nf->publish(make_flow(3, FlowState::kOngoing, kOther, FlowOrigin::kObserved));
  np->publish(make_flow(4, FlowState::kEnd, "np_api"));
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "start"}}),
            1.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "end"}}),
            1.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "netflow"}, {"origin", "observed"}, {"state", "ongoing"}}),
            2.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "netflow"}, {"origin", "observed"}, {"state", "start"}}),
            0.0);
  EXPECT_EQ(q->size(), 4u);
  EXPECT_EQ(bus.dropped(), 0u);
}

TEST(Bus, NoSubscribersStillCounts) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto np = bus.publisher("np_api");
  np->publish(make_flow(1));
  EXPECT_EQ(bus.published(), 1u);
  EXPECT_EQ(bus.dropped(), 0u);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "start"}}),
            1.0);
}

TEST(Bus, AClosedQueueCountsAsADrop) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto np = bus.publisher("np_api");
  auto q = bus.make_queue("udp_firefly", 100);
  bus.set_subscribers({{"udp_firefly", q}});
  q->close();
  np->publish(make_flow(1));
  EXPECT_EQ(bus.dropped(), 1u);
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "udp_firefly"}}), 1.0);
}

TEST(Bus, SetSubscribersReplacesTheSet) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto np = bus.publisher("np_api");
  auto old_q = bus.make_queue("udp_firefly", 100);
  auto new_q = bus.make_queue("udp_firefly", 100);
  bus.set_subscribers({{"udp_firefly", old_q}});
  np->publish(make_flow(1));
  bus.set_subscribers({{"udp_firefly", new_q}});
  np->publish(make_flow(2));
  EXPECT_EQ(old_q->size(), 1u);
  EXPECT_EQ(new_q->size(), 1u);
}

TEST(Bus, ConcurrentPublishers) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto np = bus.publisher("np_api");
  constexpr int kThreads = 4;
  constexpr int kEach = 1000;
  auto big = bus.make_queue("big", kThreads * kEach);
  auto small = bus.make_queue("small", 10);
  bus.set_subscribers({{"big", big}, {"small", small}});
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&np] {
        for (int i = 0; i < kEach; ++i) np->publish(make_flow(static_cast<std::uint16_t>(i)));
      });
  }
  EXPECT_EQ(bus.published(), static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(big->size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(small->size(), 10u);
  EXPECT_EQ(bus.dropped(), static_cast<std::uint64_t>(kThreads * kEach - 10));
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "small"}}),
            static_cast<double>(kThreads * kEach - 10));
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "start"}}),
            static_cast<double>(kThreads * kEach));
}

// ---------------------------------------------------------------------------------------------
// Batches.

TEST(EventQueue, PushBatchTakesWhatFitsInOrder) {
  EventQueue q(4);
  ASSERT_TRUE(q.push(make_flow(1)));
  std::vector<FlowID> batch{make_flow(2), make_flow(3), make_flow(4), make_flow(5), make_flow(6)};
  EXPECT_EQ(q.push_batch(batch), 3u);  // room for three: 2, 3, 4; 5 and 6 refused
  EXPECT_EQ(q.push_batch(batch), 0u);  // full
  std::vector<FlowID> out;
  ASSERT_TRUE(q.pop_batch(out, 10, {}));
  ASSERT_EQ(out.size(), 4u);
  for (std::size_t i = 0; i < out.size(); ++i)
    EXPECT_EQ(out[i].src_port, static_cast<std::uint16_t>(i + 1));
  q.close();
  EXPECT_EQ(q.push_batch(batch), 0u);  // closed
}

TEST(EventQueue, PushBatchNamesTheCopies) {
  EventQueue q(4);
  std::vector<FlowID> batch{make_flow(1, FlowState::kStart, ""),
                            make_flow(2, FlowState::kStart, "")};
  static const char kName[] = "firefly";
  EXPECT_EQ(q.push_batch(batch, kName), 2u);
  EXPECT_STREQ(batch[0].plugin, "");  // the caller's events are untouched
  std::vector<FlowID> out;
  ASSERT_TRUE(q.pop_batch(out, 10, {}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].plugin, kName);
  EXPECT_EQ(out[1].plugin, kName);
}

TEST(EventQueue, PushBatchWakesAWaitingConsumer) {
  EventQueue q(100);
  auto got = std::async(std::launch::async, [&] {
    std::vector<FlowID> out;
    std::size_t n = 0;
    while (n < 30 && q.pop_batch(out, 100, {})) n += out.size();
    return n;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it wait
  std::vector<FlowID> batch(10, make_flow(1));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(q.push_batch(batch), 10u);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(got.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(got.get(), 30u);
}

TEST(Bus, ABatchIntoAFullQueueDropsThePartThatDoesNotFitAndCountsIt) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto big = bus.make_queue("udp_firefly", 100);
  auto small = bus.make_queue("slow", 5);
  bus.set_subscribers({{"udp_firefly", big}, {"slow", small}});
  auto np = bus.publisher("np_api");
  ASSERT_TRUE(small->push(make_flow(0)));  // one already waiting: room for four
  std::vector<FlowID> batch;
  for (std::uint16_t p = 1; p <= 7; ++p)
    batch.push_back(make_flow(p, p % 2 ? FlowState::kStart : FlowState::kEnd, ""));
  np->publish(batch);

  EXPECT_EQ(bus.published(), 7u);
  EXPECT_EQ(big->size(), 7u);
  EXPECT_EQ(small->size(), 5u);
  EXPECT_EQ(bus.dropped(), 3u);  // 7 in = 4 delivered + 3 dropped for "slow"
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "slow"}}), 3.0);
  EXPECT_EQ(metric_value(reg, "flowd_bus_dropped_events_total", {{"backend", "udp_firefly"}}), 0.0);
  EXPECT_EQ(metric_value(reg, "flowd_bus_queue_depth", {{"backend", "slow"}}), 5.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "start"}}),
            4.0);
  EXPECT_EQ(metric_value(reg, "flowd_flow_events_total",
                         {{"plugin", "np_api"}, {"origin", "local"}, {"state", "end"}}),
            3.0);

  // The ones delivered are the first of the batch, named after the publisher's plugin.
  std::vector<FlowID> out;
  ASSERT_TRUE(small->pop_batch(out, 10, {}));
  ASSERT_EQ(out.size(), 5u);
  for (std::size_t i = 1; i < out.size(); ++i) {
    EXPECT_EQ(out[i].src_port, static_cast<std::uint16_t>(i));
    EXPECT_STREQ(out[i].plugin, "np_api");
  }
  ASSERT_TRUE(big->pop_batch(out, 10, {}));
  ASSERT_EQ(out.size(), 7u);
  EXPECT_EQ(out[6].src_port, 7);
}

TEST(Bus, AnEmptyBatchCountsNothing) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto q = bus.make_queue("udp_firefly", 1);
  bus.set_subscribers({{"udp_firefly", q}});
  bus.publisher("np_api")->publish(std::span<const FlowID>{});
  EXPECT_EQ(bus.published(), 0u);
  EXPECT_EQ(bus.dropped(), 0u);
  EXPECT_EQ(q->size(), 0u);
}

// Issue 15, defect 2: flowd_flow_events_total counts what plugins published; what the arbiter made
// of their local events is flowd_local_flow_arbiter_events_total{outcome}, so that passed + held +
// dropped = published and passed + added = what the backends got.
TEST(Bus, CountsWhatTheArbiterMadeOfEachLocalEvent) {
  prometheus::Registry reg;
  Bus bus(reg);
  auto q = bus.make_queue("udp_firefly", 100);
  bus.set_subscribers({{"udp_firefly", q}});
  static const char kScanner[] = "netlink";
  auto tool = bus.publisher("np_api", true);
  auto scan = bus.publisher(kScanner);
  // Port 1: the scanner's flow first, taken over and back; port 2: the tool's first, the
  // scanner's held and then handed the flow; port 3: both held behind the tool.
  scan->publish(make_flow(1, FlowState::kStart, kScanner));    // passed
  tool->publish(make_flow(1, FlowState::kStart));              // added end + passed
  scan->publish(make_flow(1, FlowState::kOngoing, kScanner));  // dropped
  tool->publish(make_flow(1, FlowState::kEnd));                // passed + added start
  scan->publish(make_flow(1, FlowState::kEnd, kScanner));      // passed
  tool->publish(make_flow(2, FlowState::kStart));              // passed
  scan->publish(make_flow(2, FlowState::kStart, kScanner));    // held
  tool->publish(make_flow(2, FlowState::kEnd));                // passed + added start
  scan->publish(make_flow(2, FlowState::kEnd, kScanner));      // passed
  tool->publish(make_flow(3, FlowState::kStart));              // passed
  scan->publish(make_flow(3, FlowState::kStart, kScanner));    // held
  scan->publish(make_flow(3, FlowState::kEnd, kScanner));      // dropped
  tool->publish(make_flow(3, FlowState::kEnd));                // passed
  auto outcome = [&](const char* o) {
    return metric_value(reg, "flowd_local_flow_arbiter_events_total", {{"outcome", o}});
  };
  EXPECT_EQ(outcome("passed"), 9.0);
  EXPECT_EQ(outcome("held"), 2.0);
  EXPECT_EQ(outcome("dropped"), 2.0);
  EXPECT_EQ(outcome("added"), 3.0);
  EXPECT_EQ(q->size(), 12u) << "passed + added";
  EXPECT_EQ(bus.published(), 12u);
  double published = 0;
  for (const char* p : {"np_api", "netlink"})
    for (const char* st : {"start", "end", "ongoing"})
      published += metric_value(reg, "flowd_flow_events_total",
                                {{"plugin", p}, {"origin", "local"}, {"state", st}})
                       .value_or(0);
  EXPECT_EQ(published, 13.0) << "passed + held + dropped";
}

// Issue 15, defect 1: at its capacity the arbiter forgets the oldest 5-tuple; that is counted, by
// the reports it held live, and said in the log (rate-limited).
TEST(Bus, TheArbiterCountsAndLogsWhatItForgetsAtItsCapacity) {
  prometheus::Registry reg;
  Bus bus(reg);
  std::ostringstream log;
  auto core = get_logger("core");
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  sink->set_pattern("%v");
  core->sinks().push_back(sink);
  auto tool = bus.publisher("np_api", true);
  auto scan = bus.publisher("netlink");
  // The oldest 5-tuple has both reports live (the scanner's held), the next only the tool's.
  FlowID both = make_flow(1);
  both.dst_port = 1;
  tool->publish(both);
  both.plugin = "netlink";
  scan->publish(both);
  FlowID one = make_flow(2);
  one.dst_port = 1;
  tool->publish(one);
  std::vector<FlowID> batch;
  for (std::uint32_t i = 0; i < 65536; ++i) {  // the capacity, 65,536 5-tuples, more
    FlowID f = make_flow(static_cast<std::uint16_t>(i), FlowState::kStart, "netlink");
    f.dst_port = 2;
    batch.push_back(f);
  }
  scan->publish(batch);
  core->sinks().pop_back();
  auto evicted = [&](const char* live) {
    return metric_value(reg, "flowd_local_flow_arbiter_evictions_total", {{"live", live}});
  };
  EXPECT_EQ(evicted("both"), 1.0);
  EXPECT_EQ(evicted("explicit"), 1.0);
  EXPECT_EQ(evicted("inferred"), 0.0);
  EXPECT_NE(log.str().find("the local flow arbiter holds 65536 5-tuples, its most: forgot the "
                           "oldest (tcp 192.0.2.1:1 -> 192.0.2.2:1, and 1 more)"),
            std::string::npos)
      << log.str();
  EXPECT_NE(log.str().find("(2 forgotten since start; flowd_local_flow_arbiter_evictions_total)"),
            std::string::npos)
      << log.str();
}

}  // namespace
}  // namespace flowd
