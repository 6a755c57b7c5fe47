// SPDX-License-Identifier: Apache-2.0
#include "analyze/connection_format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <iterator>

#include "flowd/rfc3339.hpp"
#include "flowd/scitags_label.hpp"

namespace flowd::analyze {
namespace {

// Columns printed right-aligned (numbers).
constexpr bool kRightAligned[] = {false, true, false, false, false, false, true,
                                  true,  true, true,  false, false, false};

std::string endpoint(const IpAddress& a, std::uint16_t port, bool has_port) {
  std::string s = a.to_string();
  if (!has_port) return s;
  return a.is_v6() ? fmt::format("[{}]:{}", s, port) : fmt::format("{}:{}", s, port);
}

bool has_ports(const ConnectionNames& n) {
  return n.service.has_port;
}

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
    if (registry_ && registry_->registered(tag.experiment, tag.activity)) {
      n.experiment_name = registry_->experiment_name(tag.experiment);
      n.activity_name = registry_->activity_name(tag.experiment, tag.activity);
    }
  }
  return n;
}

static void append_json_string(std::string_view v, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : v) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

void append_connection_json(const Connection& c, const ConnectionNames& n, std::string& out) {
  auto key = [&](std::string_view k) {
    out += out.back() == '{' ? "\"" : ",\"";
    out += k;
    out += "\":";
  };
  auto str = [&](std::string_view k, std::string_view v) {
    key(k);
    append_json_string(v, out);
  };
  auto opt_str = [&](std::string_view k, const std::optional<std::string>& v) {
    key(k);
    if (v)
      append_json_string(*v, out);
    else
      out += "null";
  };
  auto num = [&](std::string_view k, auto v) {
    key(k);
    fmt::format_to(std::back_inserter(out), "{}", v);
  };
  auto opt_num = [&](std::string_view k, bool present, auto v) {
    key(k);
    if (present)
      fmt::format_to(std::back_inserter(out), "{}", v);
    else
      out += "null";
  };
  out += '{';
  str("start", format_time_iso(c.start));
  str("end", format_time_iso(c.end));
  num("duration", std::chrono::duration<double>(c.end - c.start).count());
  str("time_source", to_string(c.time_source));
  num("protocol", unsigned{c.protocol});
  str("protocol_name", n.protocol);
  str("source_address", c.source.to_string());
  num("source_port", c.source_port);
  str("destination_address", c.destination.to_string());
  num("destination_port", c.destination_port);
  if (n.resolved) {
    opt_str("source_name", n.source_name);
    opt_str("destination_name", n.destination_name);
  }
  opt_str("service",
          n.service.name.empty() ? std::nullopt : std::optional<std::string>(n.service.name));
  opt_num("service_port", n.service.has_port, n.service.port);
  num("octets", c.octets);
  num("packets", c.packets);
  num("reverse_octets", c.reverse_octets);
  num("reverse_packets", c.reverse_packets);
  str("pairing", to_string(c.pairing));
  num("records", c.records);
  key("evicted");
  out += c.evicted ? "true" : "false";
  opt_num("flow_label", n.tagged, c.flow_label);
  opt_num("experiment_id", n.tagged, n.experiment);
  opt_num("activity_id", n.tagged, n.activity);
  opt_str("experiment", n.experiment_name);
  opt_str("activity", n.activity_name);
  out += '}';
}

const std::vector<std::string>& table_header() {
  static const std::vector<std::string> kHeader = {
      "START (UTC)", "DURATION", "PROTO", "SERVICE", "SOURCE", "DESTINATION", "BYTES>",
      "BYTES<",      "PKTS>",    "PKTS<", "PAIRING", "TIME",   "TAG"};
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
                        : n.service.has_port    ? fmt::format("{}/{}", n.service.port, n.protocol)
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
      append_connection_json(c, namer_.names(c), out);
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
    for (std::size_t i = 0; i < widths_.size(); ++i)
      widths_[i] = std::max(widths_[i], rows.back()[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const bool last = i + 1 == cells.size();
      const std::size_t pad = widths_[i] - std::min(widths_[i], cells[i].size());
      if (kRightAligned[i]) out.append(pad, ' ');
      out += cells[i];
      if (!kRightAligned[i] && !last) out.append(pad, ' ');
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
