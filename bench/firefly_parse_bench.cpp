// SPDX-License-Identifier: Apache-2.0
// The firefly parser alone (Google Benchmark): one Python-flowd firefly, one flowd-go ongoing
// firefly with enrichment, per call.
#include <benchmark/benchmark.h>

#include <string>

#include "firefly/firefly_parser.hpp"

namespace {

const std::string kPython =
    R"(<134>1 2026-11-22T14:21:48.514094+00:00 vm flowd - firefly-json - {"version": 1, "flow-lifecycle": )"
    R"({"state": "start", "current-time": "2026-11-22T14:21:48.514425+00:00", "start-time": )"
    R"("2026-11-22T14:21:48.507094+00:00"}, "flow-id": {"afi": "ipv4", "src-ip": "127.0.0.1", "dst-ip": )"
    R"("127.0.0.1", "protocol": "tcp", "src-port": 2345, "dst-port": 5777}, "context": {"experiment-id": 2, )"
    R"("activity-id": 9, "application": "flowd v1.1.7"}})";

const std::string kGoOngoing =
    R"(<134>1  host.example flowd-go - firefly-json - {"version":1,"flow-lifecycle":{"state":"ongoing",)"
    R"("current-time":"2025-02-06T13:21:31.893064962+01:00","start-time":"2025-02-06T13:21:30.893064962+01:00"},)"
    R"("flow-id":{"afi":"ipv6","src-ip":"2001:db8::1","dst-ip":"2001:db8::2","protocol":"tcp","src-port":2345,)"
    R"("dst-port":5777},"context":{"experiment-id":2,"activity-id":9,"application":"flowd-go-v2.4.2"},)"
    R"("netlink":{"tcpInfo":{"retransmits":0,"sndMss":1448,"pMtu":1500,"rtt":120,"rttVar":30,"sndSsThresh":)"
    R"(2147483647,"sndCwnd":10,"advMss":1448,"minRtt":100,"deliveryRate":123456789,"bytesSent":987654321},)"
    R"("cong":{"algorithm":"cubic"}},"usage":{"received":1,"sent":2}})";

void parse(benchmark::State& state, const std::string& datagram) {
  for (auto _ : state) {
    auto r = flowd::firefly::parse_firefly(datagram);
    benchmark::DoNotOptimize(r);
    if (!r.ok) state.SkipWithError("did not parse");
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(parse, python_flowd_start, kPython);
BENCHMARK_CAPTURE(parse, flowd_go_ongoing_enriched, kGoOngoing);

}  // namespace

BENCHMARK_MAIN();
