// SPDX-License-Identifier: Apache-2.0
// `flowd analyze FILE...`: one line per connection from flowd JSON dumps (plain or gzip) and
// pcap/pcapng captures of NetFlow/IPFIX exports. The logic lives in src/analyze/; this is the glue:
// inputs, counters, the rate-limited messages and the summary on stderr.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace flowd {

struct AnalyzeOptions {
  std::vector<std::string> files;  // "-": a dump on standard input
  bool json = false;
  std::string sort = "start";        // start | bytes | none
  double window_seconds = 60;        // pairing window
  std::size_t max_open = 1'000'000;  // open (unpaired) entries at most
  std::size_t buffer = 1'000'000;    // connections held for --sort
  bool resolve = false;
  unsigned resolve_timeout_ms = 1000;
  bool apply_sampling = false;  // captures: scale counters by the sampling rate
  std::string registry;  // api.json to name experiments/activities; empty: the built-in snapshot
};

// Exit codes: 0 done (malformed lines are counted, not fatal); 1 an input could not be opened or
// read to its end (a truncated gzip), the others were still analyzed; 2 bad options.
int analyze_command(const AnalyzeOptions& options);

}  // namespace flowd
