// SPDX-License-Identifier: Apache-2.0
// Two kernel programs' rings that overlap (a reload's hand-over, a changed marker map): each state
// change is handled once, whatever the two programs' clock readings of it (issue 15; CI saw 2 of
// 300 connections started twice with a time cut-off).
#include <gtest/gtest.h>

#include "plugins/kernel/ring_handover.hpp"

namespace flowd {
namespace {

using kernel::RingHandover;

flowd_conn_event change(std::uint64_t cookie, std::uint8_t kind, std::uint8_t newstate,
                        std::uint64_t ts) {
  flowd_conn_event e{};
  e.cookie = cookie;
  e.kind = kind;
  e.oldstate = 1;
  e.newstate = newstate;
  e.family = 2;
  e.local_port = 5008;
  e.remote_port = static_cast<std::uint16_t>(40000 + cookie);
  e.ts_boot_ns = ts;
  return e;
}

TEST(RingHandover, AChangeInBothRingsIsHandedOnceWhicheverClockReadingIsLater) {
  RingHandover h;
  h.begin(1000);
  // Before the new program's attach: only in the old ring, not remembered.
  const auto a_old = change(1, FLOWD_CONN_START, 1, 999);
  // In the overlap, read by the new program's clock before and after the old one's.
  const auto b_old = change(2, FLOWD_CONN_END, 7, 1002), b_new = change(2, FLOWD_CONN_END, 7, 1001);
  const auto c_old = change(3, FLOWD_CONN_START, 1, 1500);
  const auto c_new = change(3, FLOWD_CONN_START, 1, 1501);
  for (const auto& e : {a_old, b_old, c_old}) EXPECT_TRUE(h.old_record(e));
  h.old_done(2000);
  EXPECT_EQ(h.pending(), 2u);
  EXPECT_TRUE(h.duplicate(b_new));
  EXPECT_TRUE(h.duplicate(c_new));
  EXPECT_FALSE(h.duplicate(c_new)) << "skipped once only";
  EXPECT_EQ(h.pending(), 0u);
}

TEST(RingHandover, ChangesAfterTheOldDetachAreNeverSkipped) {
  RingHandover h;
  h.begin(1000);
  EXPECT_TRUE(h.old_record(change(1, FLOWD_CONN_START, 1, 1200)));
  h.old_done(2000);
  EXPECT_FALSE(h.duplicate(change(2, FLOWD_CONN_START, 1, 2100))) << "another connection";
  EXPECT_FALSE(h.duplicate(change(1, FLOWD_CONN_END, 7, 2100))) << "the same one's next change";
  // A second after the detach, nothing left can be a copy: the table goes.
  EXPECT_FALSE(h.duplicate(change(3, FLOWD_CONN_START, 1, 2000 + 1'000'000'001)));
  EXPECT_EQ(h.pending(), 0u);
  EXPECT_FALSE(h.duplicate(change(1, FLOWD_CONN_START, 1, 1200)));
}

// A reload right after a reload: the middle program is replaced before it read the copies in its
// own ring of what the first one's ring handed. Its ring is then the old one, and those copies are
// skipped there (CI's stress run: 8 of 3,000 connections started twice).
TEST(RingHandover, ARingReplacedBeforeItsCopiesWereReadSkipsThemAsTheOldRing) {
  RingHandover h;
  h.begin(1000);
  const auto x_first = change(1, FLOWD_CONN_START, 1, 1100);
  const auto x_middle = change(1, FLOWD_CONN_START, 1, 1101);
  EXPECT_TRUE(h.old_record(x_first));
  h.old_done(1200);
  // The middle program is replaced before reading its ring: x_middle is still in it.
  h.begin(1300);
  EXPECT_FALSE(h.old_record(x_middle)) << "handled already, from the first ring";
  const auto y_middle = change(2, FLOWD_CONN_END, 7, 1350);
  const auto y_last = change(2, FLOWD_CONN_END, 7, 1351);
  EXPECT_TRUE(h.old_record(y_middle));
  h.old_done(1400);
  EXPECT_TRUE(h.duplicate(y_last));
  EXPECT_FALSE(h.duplicate(x_middle)) << "skipped once, not twice";
  EXPECT_EQ(h.pending(), 0u);
}

TEST(RingHandover, WithoutAnOldRingNothingIsSkipped) {
  RingHandover h;
  EXPECT_FALSE(h.duplicate(change(1, FLOWD_CONN_START, 1, 5)));
  h.begin(1000);
  h.old_done(0);
  EXPECT_FALSE(h.duplicate(change(1, FLOWD_CONN_START, 1, 1001)));
}

}  // namespace
}  // namespace flowd
