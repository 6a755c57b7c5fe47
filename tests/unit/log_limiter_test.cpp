// SPDX-License-Identifier: Apache-2.0
// LogLimiter (src/core/log.hpp): a burst, then one line per interval, each telling how many were
// held back since the last one.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "flowd/log.hpp"

namespace flowd {
namespace {

TEST(LogLimiter, BurstThenHeldAndCounted) {
  LogLimiter l(3, std::chrono::hours(1));
  std::uint64_t held = 99;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(l.allow(held)) << i;
    EXPECT_EQ(held, 0u);
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(l.allow(held)) << i;
    EXPECT_EQ(held, 0u);
  }
}

TEST(LogLimiter, OneLinePerIntervalCarriesTheHeldCount) {
  LogLimiter l(1, std::chrono::milliseconds(300));
  std::uint64_t held = 0;
  EXPECT_TRUE(l.allow(held));
  EXPECT_FALSE(l.allow(held));
  EXPECT_FALSE(l.allow(held));
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_TRUE(l.allow(held));
  EXPECT_EQ(held, 2u) << "the two held back since the last line";
  EXPECT_FALSE(l.allow(held));
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_TRUE(l.allow(held));
  EXPECT_EQ(held, 1u);
  // A quiet interval refills one token, not a new burst.
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_TRUE(l.allow(held));
  EXPECT_EQ(held, 0u);
  EXPECT_FALSE(l.allow(held));
}

TEST(LogLimiter, SharedBetweenThreads) {
  LogLimiter l(10, std::chrono::hours(1));
  std::atomic<int> allowed{0};
  std::atomic<std::uint64_t> reported{0};
  std::vector<std::jthread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        std::uint64_t held = 0;
        if (l.allow(held)) ++allowed;
        reported += held;
      }
    });
  threads.clear();
  EXPECT_EQ(allowed.load(), 10) << "exactly the burst, however the threads interleave";
  EXPECT_EQ(reported.load(), 0u);
}

}  // namespace
}  // namespace flowd
