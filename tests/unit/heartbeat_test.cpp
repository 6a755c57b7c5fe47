// SPDX-License-Identifier: Apache-2.0
// Liveness as the watchdog sees it: waiting is healthy however long, busy past the limit is
// stalled.
#include "flowd/heartbeat.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace flowd {
namespace {

using namespace std::chrono_literals;

TEST(Heartbeat, BusyPastTheLimitIsStalledWaitingNeverIs) {
  HeartbeatBoard board;
  auto hb = board.add("plugin.test");
  std::this_thread::sleep_for(30ms);  // busy since it was made: a starting thread
  auto stalled = board.stalled(10ms);
  ASSERT_EQ(stalled.size(), 1u);
  EXPECT_EQ(stalled[0].rfind("plugin.test (", 0), 0u) << stalled[0];
  hb->enter_wait();
  std::this_thread::sleep_for(30ms);
  EXPECT_TRUE(board.stalled(10ms).empty()) << "a thread waiting for work is healthy";
  hb->leave_wait();
  EXPECT_TRUE(board.stalled(10ms).empty()) << "it just left its wait";
  EXPECT_TRUE(board.stalled(1h).empty());
}

TEST(Heartbeat, AHeartbeatLeavesTheBoardWithItsLastOwner) {
  HeartbeatBoard board;
  { auto hb = board.add("gone"); }
  std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(board.stalled(0ms).empty());
}

TEST(Heartbeat, WaitingScopeMarksTheBoundThreadOnly) {
  HeartbeatBoard board;
  auto hb = board.add("worker");
  WaitingScope unbound;  // this thread has no heartbeat yet: nothing happens
  std::thread t([&] {
    bind_thread_heartbeat(hb.get());
    {
      WaitingScope waiting;
      std::this_thread::sleep_for(30ms);
      EXPECT_TRUE(board.stalled(10ms).empty());
    }
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(board.stalled(10ms).size(), 1u);
    bind_thread_heartbeat(nullptr);
  });
  t.join();
}

}  // namespace
}  // namespace flowd
