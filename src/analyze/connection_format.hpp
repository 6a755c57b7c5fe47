// SPDX-License-Identifier: Apache-2.0
// How `flowd analyze` prints a connection: one JSON object per line, or a row of an aligned table.
// The JSON keys (stable; documented in the README):
//   start, end          RFC 3339 UTC (flowd's format_time_iso)
//   duration            seconds (a number with a fraction)
//   time_source         "flow" | "flow_start" | "flow_end" | "observation" | "received"
//   protocol            protocolIdentifier (number); protocol_name: protocols(5) name or the number
//   source_address, source_port, destination_address, destination_port   (initiator = source;
//                       ports 0 for ICMP)
//   source_name, destination_name   reverse-DNS names or null; only with --resolve
//   service             services(5) name of the well-known port, or null; service_port: that port
//                       (null for protocols without ports)
//   octets, packets     source -> destination; reverse_octets, reverse_packets: the other way
//   pairing             "biflow" | "matched" | "unpaired"; records: flow records merged;
//   evicted             true when closed early because too many connections were open
//   flow_label          flowLabelIPv6 when it carries a Scitags tag, else null; experiment_id,
//                       activity_id from it; experiment, activity: registry names, null when the
//                       registry does not list the pair (then the label may be random, not a tag)
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analyze/connection_pairing.hpp"
#include "analyze/reverse_dns.hpp"
#include "analyze/service_names.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::analyze {

// What a connection is called: everything looked up outside the connection itself.
struct ConnectionNames {
  std::string protocol;  // protocol_name
  Service service;
  bool resolved = false;  // --resolve: the two names below are meaningful
  std::optional<std::string> source_name, destination_name;
  bool tagged = false;  // the flow label carries a tag (non-zero experiment/activity bits)
  unsigned experiment = 0, activity = 0;
  std::optional<std::string> experiment_name, activity_name;  // when the registry lists the pair
};

class ConnectionNamer {
 public:
  // `registry` and `dns` may be null (no names; no --resolve).
  ConnectionNamer(std::shared_ptr<const ScitagsRegistry> registry, ReverseDns* dns)
      : registry_(std::move(registry)), dns_(dns) {}
  // Starts the reverse lookups of a chunk at once, so they run in parallel.
  void prefetch(const std::vector<Connection>& chunk);
  ConnectionNames names(const Connection& c);

 private:
  std::shared_ptr<const ScitagsRegistry> registry_;
  ReverseDns* dns_;
  ServiceNames services_;
};

// Appends the connection's JSON object (no newline) to `out`; written directly rather than through
// nlohmann::json, whose per-key allocations were a third of `--json` run time.
void append_connection_json(const Connection& c, const ConnectionNames& names, std::string& out);

// The table's cells for one connection, in the order of table_header().
std::vector<std::string> table_cells(const Connection& c, const ConnectionNames& names);
const std::vector<std::string>& table_header();
// "2026-11-22 14:12:39.904" (UTC, milliseconds).
std::string format_table_time(TimePoint t);

// Writes chunks of connections to `out` as JSON lines or as a table whose column widths grow to
// fit (the header is written with the first chunk).
class ConnectionWriter {
 public:
  ConnectionWriter(std::FILE* out, bool json, ConnectionNamer& namer)
      : out_(out), json_(json), namer_(namer) {}
  void write(const std::vector<Connection>& chunk);

 private:
  std::FILE* out_;
  bool json_;
  ConnectionNamer& namer_;
  std::vector<std::size_t> widths_;
  bool header_done_ = false;
};

}  // namespace flowd::analyze
