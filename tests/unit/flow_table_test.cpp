// SPDX-License-Identifier: Apache-2.0
// FlowTable (src/common/flow_table.hpp): lookup, insertion order, eviction of the oldest-inserted
// entry, refusal, the overflow count, and a randomized comparison with std::unordered_map plus an
// insertion-order model, so that the backward-shift erasure is exercised on long probe chains.
#include "common/flow_table.hpp"

#include <gtest/gtest.h>

#include <list>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowd {
namespace {

using Table = FlowTable<int, std::string>;

std::vector<int> keys_in_order(Table& t) {
  std::vector<int> out;
  t.for_each([&](const int& k, std::string&) { out.push_back(k); });
  return out;
}

TEST(FlowTable, FindInsertEraseExtract) {
  Table t(8);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(1), nullptr);
  auto [v, fresh] = t.emplace(1, "one");
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(fresh);
  EXPECT_EQ(*v, "one");
  auto [again, fresh2] = t.emplace(1, "uno");
  EXPECT_FALSE(fresh2);
  EXPECT_EQ(*again, "one") << "an existing key keeps its value";
  EXPECT_TRUE(t.contains(1));
  EXPECT_EQ(t.size(), 1u);
  t.emplace(2, "two");
  EXPECT_EQ(t.extract(2), std::optional<std::string>("two"));
  EXPECT_EQ(t.extract(2), std::nullopt);
  EXPECT_TRUE(t.erase(1));
  EXPECT_FALSE(t.erase(1));
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.overflow(), 0u);
}

TEST(FlowTable, FullTableEvictsTheOldestInserted) {
  Table t(3);
  for (int k : {10, 20, 30}) t.emplace(k, std::to_string(k));
  EXPECT_TRUE(t.full());
  // Looking a key up does not make it younger: insertion order, not LRU.
  EXPECT_NE(t.find(10), nullptr);
  std::vector<std::pair<int, std::string>> evicted;
  auto on_evict = [&](const int& k, std::string& v) { evicted.emplace_back(k, v); };
  t.emplace(40, "40", on_evict);
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0], std::make_pair(10, std::string("10")));
  EXPECT_EQ(t.find(10), nullptr);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.overflow(), 1u);
  EXPECT_EQ(keys_in_order(t), (std::vector<int>{20, 30, 40}));
  // An existing key is no overflow.
  t.emplace(30, "x", on_evict);
  EXPECT_EQ(t.overflow(), 1u);
  // A freed place is taken without evicting.
  t.erase(30);
  t.emplace(50, "50", on_evict);
  EXPECT_EQ(t.overflow(), 1u);
  EXPECT_EQ(keys_in_order(t), (std::vector<int>{20, 40, 50}));
  t.emplace(60, "60", on_evict);
  EXPECT_EQ(evicted.back().first, 20);
  EXPECT_EQ(t.overflow(), 2u);
}

TEST(FlowTable, RefusalKeepsWhatIsThere) {
  Table t(2);
  EXPECT_TRUE(t.emplace_or_refuse(1, "a").second);
  EXPECT_TRUE(t.emplace_or_refuse(2, "b").second);
  auto [v, fresh] = t.emplace_or_refuse(3, "c");
  EXPECT_EQ(v, nullptr);
  EXPECT_FALSE(fresh);
  EXPECT_EQ(t.overflow(), 1u);
  EXPECT_EQ(keys_in_order(t), (std::vector<int>{1, 2}));
  // An existing key is found, full or not.
  ASSERT_NE(t.emplace_or_refuse(2, "z").first, nullptr);
  EXPECT_EQ(*t.emplace_or_refuse(2, "z").first, "b");
  EXPECT_EQ(t.overflow(), 1u);
}

TEST(FlowTable, EraseIfAndClear) {
  Table t(100);
  for (int k = 0; k < 50; ++k) t.emplace(k, std::to_string(k));
  std::vector<int> seen;
  EXPECT_EQ(t.erase_if([&](const int& k, std::string&) {
    seen.push_back(k);
    return k % 2 == 0;
  }),
            25u);
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_EQ(seen.front(), 0) << "oldest first";
  EXPECT_EQ(t.size(), 25u);
  for (int k = 0; k < 50; ++k) EXPECT_EQ(t.contains(k), k % 2 == 1) << k;
  t.clear();
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.find(1), nullptr);
  t.emplace(7, "7");
  EXPECT_EQ(keys_in_order(t), (std::vector<int>{7}));
}

TEST(FlowTable, CapacityIsCheckedAndMemoryBounded) {
  EXPECT_THROW(Table(0), std::invalid_argument);
  Table t(1000);
  EXPECT_EQ(t.capacity(), 1000u);
  EXPECT_EQ(t.max_bytes(), 1000u * Table::kBytesPerEntry);
  EXPECT_GE(Table::kBytesPerEntry, sizeof(int) + sizeof(std::string));
}

// The entries never move when the table grows: an insertion costs at most one chunk, not a copy
// of every entry (the pipeline's tables all doubled at the same flow and stalled it for tens of
// milliseconds at once), and a pointer stays valid until its own entry goes.
TEST(FlowTable, EntriesStayWhereTheyAreWhileTheTableGrows) {
  Table t(100000);
  std::vector<const std::string*> where;
  for (int k = 0; k < 20000; ++k) where.push_back(t.emplace(k, std::to_string(k)).first);
  for (int k = 0; k < 20000; k += 997) {
    ASSERT_EQ(t.find(k), where[static_cast<std::size_t>(k)]) << "entry " << k << " moved";
    EXPECT_EQ(*where[static_cast<std::size_t>(k)], std::to_string(k));
  }
  // A freed entry is reused in place, and clear() keeps the chunks for the next fill.
  t.erase(5);
  EXPECT_EQ(t.emplace(-5, "minus five").first, where[5]);
  t.clear();
  EXPECT_EQ(t.emplace(1, "one").first, where[0]) << "clear() reuses the first entry";
  EXPECT_EQ(keys_in_order(t), (std::vector<int>{1}));
}

// A copy is a snapshot: its own entries, in the same order, and changing one leaves the other be.
TEST(FlowTable, ACopyIsASnapshotOfItsOwn) {
  Table t(1000);
  for (int k = 0; k < 300; ++k) t.emplace(k, std::to_string(k));
  for (int k = 0; k < 300; k += 3) t.erase(k);
  Table copy = t;
  EXPECT_EQ(keys_in_order(copy), keys_in_order(t));
  EXPECT_NE(copy.find(1), t.find(1));
  *copy.find(1) = "changed";
  copy.emplace(1000, "new");
  EXPECT_EQ(*t.find(1), "1");
  EXPECT_FALSE(t.contains(1000));
  t = copy;
  EXPECT_EQ(*t.find(1), "changed");
  EXPECT_EQ(t.size(), copy.size());
}

// A table smaller than a chunk never allocates beyond its capacity, and still fills and evicts.
TEST(FlowTable, ATableSmallerThanAChunkFillsAndEvicts) {
  Table t(3);
  for (int k = 0; k < 10; ++k) t.emplace(k, std::to_string(k));
  EXPECT_EQ(keys_in_order(t), (std::vector<int>{7, 8, 9}));
  EXPECT_EQ(t.overflow(), 7u);
}

// Keys that all share a home slot (a constant hash) make one long probe chain: every erasure has
// to shift the chain back, and every lookup walks it.
struct SameHash {
  std::size_t operator()(int) const { return 42; }
};

TEST(FlowTable, CollidingKeysStayFindableThroughErasures) {
  FlowTable<int, int, SameHash> t(64);
  for (int k = 0; k < 40; ++k) t.emplace(k, k);
  for (int k = 0; k < 40; k += 3) EXPECT_TRUE(t.erase(k));
  for (int k = 0; k < 40; ++k) {
    const int* v = t.find(k);
    if (k % 3 == 0) {
      EXPECT_EQ(v, nullptr) << k;
    } else {
      ASSERT_NE(v, nullptr) << k;
      EXPECT_EQ(*v, k);
    }
  }
}

// A random mix of `steps` operations (insert 6/10, erase 2/10, find 2/10) on keys 0..max_key
// against a model: an unordered_map for the contents and a list for the insertion order (what
// eviction takes first).
void check_against_a_model(std::size_t capacity, int max_key, int steps, unsigned seed) {
  FlowTable<int, int> t(capacity);
  std::unordered_map<int, int> model;
  std::list<int> order;
  std::unordered_map<int, std::list<int>::iterator> where;
  std::uint64_t evictions = 0;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> key(0, max_key), op(0, 9);
  for (int i = 0; i < steps; ++i) {
    const int k = key(rng);
    const int o = op(rng);
    if (o < 6) {
      int evicted = -1;
      auto [v, fresh] = t.emplace(k, i, [&](const int& ek, int&) { evicted = ek; });
      ASSERT_NE(v, nullptr);
      ASSERT_EQ(fresh, !model.contains(k)) << "step " << i;
      if (fresh) {
        if (model.size() == capacity) {
          ASSERT_EQ(evicted, order.front()) << "step " << i;
          model.erase(order.front());
          where.erase(order.front());
          order.pop_front();
          ++evictions;
        }
        model[k] = i;
        where[k] = order.insert(order.end(), k);
      } else {
        ASSERT_EQ(*v, model[k]);
        ASSERT_EQ(evicted, -1);
      }
    } else if (o < 8) {
      ASSERT_EQ(t.erase(k), model.erase(k) == 1) << "step " << i;
      if (auto w = where.find(k); w != where.end()) {
        order.erase(w->second);
        where.erase(w);
      }
    } else {
      const int* v = t.find(k);
      ASSERT_EQ(v != nullptr, model.contains(k)) << "step " << i;
      if (v) {
        ASSERT_EQ(*v, model[k]);
      }
    }
    ASSERT_EQ(t.size(), model.size());
  }
  EXPECT_EQ(t.overflow(), evictions);
  EXPECT_GT(evictions, 0u);
  std::vector<int> got;
  t.for_each([&](const int& k, int&) { got.push_back(k); });
  EXPECT_EQ(got, std::vector<int>(order.begin(), order.end()));
}

TEST(FlowTable, MatchesAModelUnderRandomOperations) {
  check_against_a_model(257, 600, 50000, 12345);
}

// A table of kShardedFrom entries or more splits its index in shards that double on their own:
// the same model, large enough that every shard grows, fills, evicts and shrinks by erasure.
TEST(FlowTable, AShardedTableMatchesAModelUnderRandomOperations) {
  constexpr std::size_t kCapacity = FlowTable<int, int>::kShardedFrom + 5;
  check_against_a_model(kCapacity, 3 * static_cast<int>(kCapacity), 200000, 777);
}

}  // namespace
}  // namespace flowd
