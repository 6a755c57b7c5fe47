// SPDX-License-Identifier: Apache-2.0
// The cost of filling a FlowTable (src/common/flow_table.hpp) the way the pipeline does: one
// insertion per new flow, keyed as the arbiter keys it, with values of the sizes the pipeline's
// tables hold (a time point, a FlowID, an arbiter entry of two FlowIDs). Prints the total, the
// mean per insertion and the slowest single insertion with the entry at which it happened: a
// growth that moves every entry shows up as one slow insertion at a power of two, and stalls the
// thread that publishes (issue 15, docs/benchmarks.md).
//   flowd_flow_table_bench [--entries N] [--rounds R]
#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/flow_table.hpp"
#include "flowd/flow_id.hpp"

namespace {

using flowd::FlowID;
using flowd::FlowKey;
using flowd::FlowKeyHash;
using flowd::FlowTable;

struct ArbiterLike {  // the shape of LocalFlowArbiter::Entry: one report per rank
  FlowID inferred, explicit_report;
  bool closed = false;
};

template <class Value>
void fill(const char* name, long entries, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    FlowTable<FlowKey, Value, FlowKeyHash> table(std::size_t{1} << 20);
    double total_us = 0, worst_us = 0;
    long worst_at = 0;
    for (long i = 0; i < entries; ++i) {
      const FlowKey key{flowd::Protocol::kTcp, flowd::IpAddress{}, flowd::IpAddress{},
                        static_cast<std::uint16_t>(i / 65535),
                        static_cast<std::uint16_t>(i % 65535 + 1)};
      const auto t0 = std::chrono::steady_clock::now();
      table.emplace(key, Value{});
      const double us =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      total_us += us;
      if (us > worst_us) {
        worst_us = us;
        worst_at = i;
      }
    }
    fmt::print(
        "value={} bytes={} entries={} total_ms={:.1f} mean_us={:.2f} worst_ms={:.2f} at={}\n", name,
        sizeof(Value), entries, total_us / 1000, total_us / static_cast<double>(entries),
        worst_us / 1000, worst_at);
  }
}

}  // namespace

int main(int argc, char** argv) {
  long entries = 50000;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--entries") entries = std::stol(argv[i + 1]);
    if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
  }
  fill<std::chrono::system_clock::time_point>("time_point", entries, rounds);
  fill<FlowID>("FlowID", entries, rounds);
  fill<ArbiterLike>("arbiter_entry", entries, rounds);
}
