// SPDX-License-Identifier: Apache-2.0
// LogLimiter and limited_warn (include/flowd/log.hpp), ReasonCounters
// (include/flowd/reason_counters.hpp): a burst, then one line per interval, each telling how many
// were held back since the last one.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "flowd/log.hpp"
#include "flowd/reason_counters.hpp"

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

TEST(LimitedWarn, LogsTheBurstThenTheNextLineWithTheHeldCount) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger log("limited_warn_test", sink);
  log.set_pattern("%v");
  LogLimiter l(2, std::chrono::milliseconds(200));
  for (int i = 0; i < 5; ++i) limited_warn(log, l, "bad datagram {} from {}", i, "192.0.2.1");
  EXPECT_EQ(out.str(), "bad datagram 0 from 192.0.2.1\nbad datagram 1 from 192.0.2.1\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  limited_warn(log, l, "bad datagram {} from {}", 5, "192.0.2.1");
  EXPECT_EQ(out.str(),
            "bad datagram 0 from 192.0.2.1\nbad datagram 1 from 192.0.2.1\n"
            "bad datagram 5 from 192.0.2.1 (3 more not logged)\n");
}

enum class TestReason { kShort, kLong };
inline constexpr std::size_t kTestReasonCount = 2;
const char* to_string(TestReason r) {
  return r == TestReason::kShort ? "short" : "long";
}

TEST(ReasonCounters, OneSeriesPerReasonFromTheStartAndOutOfRangeIgnored) {
  prometheus::Registry reg;
  ReasonCounters<TestReason, kTestReasonCount> c(reg, "flowd_test_rejected_total", "test", "reason",
                                                 {{"transport", "udp"}});
  c.add(TestReason::kLong);
  c.add(TestReason::kLong, 2);
  c.add(static_cast<TestReason>(7));  // not a reason: ignored, no new series
  EXPECT_EQ(c.value(TestReason::kShort), 0);
  EXPECT_EQ(c.value(TestReason::kLong), 3);
  auto fams = reg.Collect();
  ASSERT_EQ(fams.size(), 1u);
  ASSERT_EQ(fams[0].metric.size(), 2u) << "a series per reason, present at 0";
  for (const auto& m : fams[0].metric) {
    ASSERT_EQ(m.label.size(), 2u);
    EXPECT_EQ(m.label[1].name, "transport");
    EXPECT_EQ(m.label[0].name, "reason");
    EXPECT_TRUE(m.label[0].value == "short" || m.label[0].value == "long") << m.label[0].value;
  }
}

}  // namespace
}  // namespace flowd
