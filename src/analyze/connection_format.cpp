// SPDX-License-Identifier: Apache-2.0
#include "analyze/connection_format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "flowd/scitags_label.hpp"

namespace flowd::analyze {
namespace {

// Columns printed right-aligned (numbers).
constexpr bool kRightAligned[] = {false, true, false, false, false, false,
                                  true,  true, true,  true,  false, false, false};

std::string endpoint(const IpAddress& a, std::uint16_t port, bool has_port) {
  std::string s = a.to_string();
  if (!has_port) return s;
  return a.is_v6() ? fmt::format("[{}]:{}", s, port) : fmt::format("{}:{}", s, port);
}

bool has_ports(const ConnectionNames& n) { return n.service.has_port; }

}  // namespace

void ConnectionNamer::prefetch(const std::vector<Connection>& chunk) {
  if (!dns_) return;
  for (const Connection& c : chunk) {
    dns_->prefetch(c.source);
    dns_->prefetch(c.destination);
  }
}

ConnectionNames ConnectionNamer::names(const Connection& c) {
  ConnectionNames n;
  n.protocol = services_.protocol_name(c.protocol);
  n.service = services_.service(c);
  if (dns_) {
    n.resolved = true;
    n.source_name = dns_->name(c.source);
    n.destination_name = dns_->name(c.destination);
  }
  // As the netflow plugin: a label is a tag when its experiment/activity bits are not all zero.
  if ((c.flow_label & kLabelSemanticMask) != 0) {
    const LabelTag tag = decode_label(c.flow_label);
    n.tagged = true;
    n.experiment = tag.experiment;
    n.activity = tag.activity;
    if (registry_ && registry_->is_registered(tag.experiment, tag.activity)) {
      n.experiment_name = registry_->experiment_name(tag.experiment);
      n.activity_name = registry_->activity_name(tag.experiment, tag.activity);
    }
  }
  return n;
}

nlohmann::ordered_json connection_json(const Connection& c, const ConnectionNames& n) {
  using nlohmann::ordered_json;
  auto or_null = [](const std::optional<std::string>& s) -> ordered_json {
    return s ? ordered_json(*s) : ordered_json(nullptr);
  };
  ordered_json j;
  j["start"] = format_time_iso(c.start);
  j["end"] = format_time_iso(c.end);
  j["duration"] = std::chrono::duration<double>(c.end - c.start).count();
  j["time_source"] = to_string(c.time_source);
  j["protocol"] = c.protocol;
  j["protocol_name"] = n.protocol;
  j["source_address"] = c.source.to_string();
  j["source_port"] = c.source_port;
  j["destination_address"] = c.destination.to_string();
  j["destination_port"] = c.destination_port;
  if (n.resolved) {
    j["source_name"] = or_null(n.source_name);
    j["destination_name"] = or_null(n.destination_name);
  }
  j["service"] = n.service.name.empty() ? ordered_json(nullptr) : ordered_json(n.service.name);
  j["service_port"] = n.service.has_port ? ordered_json(n.service.port) : ordered_json(nullptr);
  j["octets"] = c.octets;
  j["packets"] = c.packets;
  j["reverse_octets"] = c.reverse_octets;
  j["reverse_packets"] = c.reverse_packets;
  j["pairing"] = to_string(c.pairing);
  j["records"] = c.records;
  j["evicted"] = c.evicted;
  j["flow_label"] = n.tagged ? ordered_json(c.flow_label) : ordered_json(nullptr);
  j["experiment_id"] = n.tagged ? ordered_json(n.experiment) : ordered_json(nullptr);
  j["activity_id"] = n.tagged ? ordered_json(n.activity) : ordered_json(nullptr);
  j["experiment"] = or_null(n.experiment_name);
  j["activity"] = or_null(n.activity_name);
  return j;
}

const std::vector<std::string>& table_header() {
  static const std::vector<std::string> kHeader = {
      "START (UTC)", "DURATION", "PROTO", "SERVICE", "SOURCE",  "DESTINATION", "BYTES>",
      "BYTES<",      "PKTS>",    "PKTS<", "PAIRING", "TIME",    "TAG"};
  return kHeader;
}

std::string format_table_time(TimePoint t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const std::time_t secs = system_clock::to_time_t(floor<seconds>(ms));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (ms - floor<seconds>(ms)).count());
}

std::vector<std::string> table_cells(const Connection& c, const ConnectionNames& n) {
  auto named = [&](const IpAddress& a, std::uint16_t port, const std::optional<std::string>& name) {
    std::string e = endpoint(a, port, has_ports(n));
    return name ? fmt::format("{} ({})", *name, e) : e;
  };
  std::string service = !n.service.name.empty() ? n.service.name
                        : n.service.has_port     ? fmt::format("{}/{}", n.service.port, n.protocol)
                                                 : n.protocol;
  std::string tag = "-";
  if (n.tagged)
    tag = n.experiment_name ? fmt::format("{}/{}", *n.experiment_name, *n.activity_name)
                            : fmt::format("{}/{}?", n.experiment, n.activity);
  return {format_table_time(c.start),
          fmt::format("{:.3f}", std::chrono::duration<double>(c.end - c.start).count()),
          n.protocol,
          std::move(service),
          named(c.source, c.source_port, n.source_name),
          named(c.destination, c.destination_port, n.destination_name),
          std::to_string(c.octets),
          std::to_string(c.reverse_octets),
          std::to_string(c.packets),
          std::to_string(c.reverse_packets),
          c.evicted ? fmt::format("{}!", to_string(c.pairing)) : std::string(to_string(c.pairing)),
          std::string(to_string(c.time_source)),
          std::move(tag)};
}

void ConnectionWriter::write(const std::vector<Connection>& chunk) {
  namer_.prefetch(chunk);
  std::string out;
  if (json_) {
    for (const Connection& c : chunk) {
      out += connection_json(c, namer_.names(c)).dump();
      out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), out_);
    return;
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(chunk.size());
  if (widths_.empty())
    for (const auto& h : table_header()) widths_.push_back(h.size());
  for (const Connection& c : chunk) {
    rows.push_back(table_cells(c, namer_.names(c)));
    for (std::size_t i = 0; i < widths_.size(); ++i) widths_[i] = std::max(widths_[i], rows.back()[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const bool last = i + 1 == cells.size();
      if (kRightAligned[i])
        out += fmt::format("{:>{}}", cells[i], widths_[i]);
      else
        out += last ? cells[i] : fmt::format("{:<{}}", cells[i], widths_[i]);
      out += last ? "\n" : "  ";
    }
  };
  if (!header_done_) {
    line(table_header());
    header_done_ = true;
  }
  for (const auto& r : rows) line(r);
  std::fwrite(out.data(), 1, out.size(), out_);
}

}  // namespace flowd::analyze
