// SPDX-License-Identifier: Apache-2.0
#include "app/analyze_cli.hpp"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "analyze/connection_format.hpp"
#include "analyze/connection_order.hpp"
#include "analyze/connection_pairing.hpp"
#include "analyze/dump_line.hpp"
#include "analyze/dump_reader.hpp"
#include "analyze/half_flow.hpp"
#include "analyze/reverse_dns.hpp"
#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "core/registry_loader.hpp"

namespace flowd {
namespace {

using analyze::LineError;

// Messages per malformed-line reason and file; the rest are only counted.
constexpr std::size_t kMessagesPerReason = 5;

struct Stats {
  std::uint64_t records = 0;  // flow records given to the pairer
  std::uint64_t options = 0, no_addresses = 0;
  std::uint64_t lines = 0, blank = 0;
  std::array<std::uint64_t, analyze::kLineErrorCount> malformed{};
  std::array<std::uint64_t, collector::kDecodeErrorCount> decode_errors{};
  std::uint64_t payloads = 0, frames_skipped = 0, held_for_template = 0;
  std::uint64_t time_fallback = 0;  // records timed by their arrival
  bool failed = false;              // an input could not be opened or read to its end

  std::uint64_t malformed_total() const {
    std::uint64_t n = 0;
    for (auto m : malformed) n += m;
    return n;
  }
};

enum class InputKind { kDump, kCapture };

// pcap (either byte order, micro- or nanosecond) and pcapng files start with these magics;
// anything else is read as a dump (zlib reads gzip and plain text alike).
InputKind input_kind(const std::string& path) {
  if (path == "-") return InputKind::kDump;
  std::ifstream in(path, std::ios::binary);
  unsigned char m[4] = {};
  if (!in.read(reinterpret_cast<char*>(m), 4)) return InputKind::kDump;
  const std::uint32_t be = std::uint32_t{m[0]} << 24 | m[1] << 16 | m[2] << 8 | m[3];
  switch (be) {
    case 0xa1b2c3d4:
    case 0xd4c3b2a1:
    case 0xa1b23c4d:
    case 0x4d3cb2a1:
    case 0x0a0d0d0a:
      return InputKind::kCapture;
    default:
      return InputKind::kDump;
  }
}

void count_time(const analyze::HalfFlow& f, Stats& stats) {
  ++stats.records;
  if (f.time_source == analyze::TimeSource::kReceived) ++stats.time_fallback;
}

void analyze_dump(const std::string& path, analyze::ConnectionPairer& pairer, Stats& stats) {
  analyze::DumpReader reader(path);
  analyze::DumpLineParser parser;
  std::array<std::size_t, analyze::kLineErrorCount> shown{};
  auto report = [&](LineError e, std::uint64_t line, std::string_view detail, bool last) {
    const auto i = static_cast<std::size_t>(e);
    ++stats.malformed[i];
    if (shown[i] < kMessagesPerReason)
      std::fprintf(stderr, "%s:%llu: malformed line (%s): %.*s%s\n", path.c_str(),
                   static_cast<unsigned long long>(line), std::string(to_string(e)).c_str(),
                   static_cast<int>(detail.size()), detail.data(),
                   last ? " (last line, no newline: a cut-off file?)" : "");
    else if (shown[i] == kMessagesPerReason)
      std::fprintf(stderr, "%s: further malformed lines (%s) are only counted\n", path.c_str(),
                   std::string(to_string(e)).c_str());
    ++shown[i];
  };
  analyze::DumpLine line;
  while (reader.next(line)) {
    ++stats.lines;
    if (line.too_long) {
      report(LineError::kTooLong, line.number,
             fmt::format("more than {} bytes", analyze::kMaxLineBytes), false);
      continue;
    }
    const analyze::ParsedLine& r = parser.parse(line.text, /*padded=*/true);
    switch (r.outcome) {
      case analyze::LineOutcome::kFlow:
        count_time(r.flow, stats);
        pairer.add(r.flow, r.received.value_or(r.flow.end));
        break;
      case analyze::LineOutcome::kOptions:
        ++stats.options;
        break;
      case analyze::LineOutcome::kNoAddresses:
        ++stats.no_addresses;
        break;
      case analyze::LineOutcome::kBlank:
        ++stats.blank;
        break;
      case analyze::LineOutcome::kMalformed:
        report(r.error, line.number, r.detail, line.unterminated);
        break;
    }
  }
  if (!reader.error().empty()) {
    std::fprintf(stderr, "%s: %s (after line %llu); what came before was analyzed\n", path.c_str(),
                 reader.error().c_str(), static_cast<unsigned long long>(line.number));
    stats.failed = true;
  }
}

void analyze_capture(const std::string& path, bool apply_sampling,
                     analyze::ConnectionPairer& pairer, Stats& stats) {
  collector::DecoderLimits udp_limits;
  udp_limits.apply_sampling = apply_sampling;
  collector::Decoder udp(udp_limits);
  collector::DecoderLimits tcp_limits = udp_limits;
  tcp_limits.udp = false;
  collector::Decoder tcp(tcp_limits);
  collector::RecordBatch batch;
  analyze::HalfFlowBuilder scratch;
  analyze::HalfFlow flow;
  std::size_t skipped = 0;
  collector::read_capture(
      path,
      [&](const collector::CapturedPayload& p) {
        batch.clear();
        auto r = (p.tcp ? tcp : udp).decode(p.bytes, p.exporter, p.time, batch);
        ++stats.payloads;
        for (auto e : r.errors) ++stats.decode_errors[static_cast<std::size_t>(e)];
        for (const auto& rec : batch) {
          switch (analyze::half_flow_from_record(rec, scratch, flow)) {
            case analyze::BuildResult::kOk:
              count_time(flow, stats);
              pairer.add(flow, rec.received);
              break;
            case analyze::BuildResult::kOptions:
              ++stats.options;
              break;
            case analyze::BuildResult::kNoAddresses:
            case analyze::BuildResult::kNoTime:
              ++stats.no_addresses;
              break;
          }
        }
      },
      skipped);
  stats.frames_skipped += skipped;
  stats.held_for_template += udp.pending_count() + tcp.pending_count();
}

std::shared_ptr<const ScitagsRegistry> load_names(const std::string& path) {
  std::string error;
  if (path.empty()) return ScitagsRegistry::parse(registry_snapshot_json(), error);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("--registry " + path + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  auto reg = ScitagsRegistry::parse(text.str(), error);
  if (!reg) throw std::invalid_argument("--registry " + path + ": " + error);
  return reg;
}

void print_summary(const Stats& s, const analyze::PairingCounters& p,
                   const analyze::OrderCounters& o, analyze::SortKey sort,
                   const analyze::ReverseDns* dns) {
  std::string line = fmt::format(
      "flowd analyze: records {}, connections {} (paired {}: matched {}, biflow {}; unpaired {}; "
      "evicted early {}), skipped {} (options {}, no_addresses {}), malformed lines {}",
      s.records, p.connections, p.matched + p.biflow, p.matched, p.biflow, p.unpaired, p.evicted,
      s.options + s.no_addresses, s.options, s.no_addresses, s.malformed_total());
  std::fprintf(stderr, "%s\n", line.c_str());
  if (s.malformed_total()) {
    std::string by;
    for (std::size_t i = 0; i < s.malformed.size(); ++i)
      if (s.malformed[i])
        by += fmt::format("{}{} {}", by.empty() ? "" : ", ", to_string(static_cast<LineError>(i)),
                          s.malformed[i]);
    std::fprintf(stderr, "  malformed lines by reason: %s (of %llu lines)\n", by.c_str(),
                 static_cast<unsigned long long>(s.lines));
  }
  if (s.payloads) {
    std::string errors;
    for (std::size_t i = 0; i < s.decode_errors.size(); ++i)
      if (s.decode_errors[i])
        errors +=
            fmt::format(", {} {}", collector::to_string(static_cast<collector::DecodeError>(i)),
                        s.decode_errors[i]);
    std::fprintf(
        stderr, "  captures: %llu export payloads, %llu frames not UDP/TCP%s%s\n",
        static_cast<unsigned long long>(s.payloads),
        static_cast<unsigned long long>(s.frames_skipped), errors.c_str(),
        s.held_for_template
            ? fmt::format(", {} records held for a template that never came", s.held_for_template)
                  .c_str()
            : "");
  }
  if (s.time_fallback)
    std::fprintf(stderr,
                 "  %llu records had no flow or observation time: timed by their arrival "
                 "(time_source received)\n",
                 static_cast<unsigned long long>(s.time_fallback));
  if (p.split)
    std::fprintf(stderr,
                 "  %llu connections were split: the same 5-tuple came back after the window\n",
                 static_cast<unsigned long long>(p.split));
  if (p.evicted)
    std::fprintf(
        stderr,
        "  %llu connections were closed early because --max-open entries were open: their other "
        "direction, if it came later, is a connection of its own\n",
        static_cast<unsigned long long>(p.evicted));
  if (sort == analyze::SortKey::kStart && o.late)
    std::fprintf(stderr,
                 "  %llu connections are out of start order: more than --buffer connections closed "
                 "after them (raise --buffer)\n",
                 static_cast<unsigned long long>(o.late));
  if (sort == analyze::SortKey::kBytes && o.dropped)
    std::fprintf(
        stderr,
        "  --sort bytes kept the %llu largest connections; %llu smaller ones were not printed "
        "(raise --buffer)\n",
        static_cast<unsigned long long>(o.written), static_cast<unsigned long long>(o.dropped));
  if (dns) {
    auto d = dns->counters();
    std::fprintf(stderr, "  reverse DNS: %zu lookups, %zu names, %zu timeouts%s\n", d.lookups,
                 d.names, d.timeouts,
                 d.not_asked
                     ? fmt::format(", {} addresses not looked up (cache full)", d.not_asked).c_str()
                     : "");
  }
}

}  // namespace

int analyze_command(const AnalyzeOptions& o) {
  analyze::SortKey sort;
  if (o.sort == "start")
    sort = analyze::SortKey::kStart;
  else if (o.sort == "bytes")
    sort = analyze::SortKey::kBytes;
  else if (o.sort == "none")
    sort = analyze::SortKey::kNone;
  else {
    std::fprintf(stderr, "flowd analyze: --sort must be start, bytes or none, not '%s'\n",
                 o.sort.c_str());
    return 2;
  }
  if (!(o.window_seconds >= 0) || o.window_seconds > 86400 * 365) {
    std::fprintf(stderr, "flowd analyze: --window must be 0..31536000 seconds\n");
    return 2;
  }
  if (o.files.empty()) {
    std::fprintf(stderr, "flowd analyze: no input files\n");
    return 2;
  }
  std::shared_ptr<const ScitagsRegistry> registry;
  try {
    registry = load_names(o.registry);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowd analyze: %s\n", e.what());
    return 2;
  }

  std::unique_ptr<analyze::ReverseDns> dns;
  if (o.resolve) {
    analyze::ReverseDnsOptions d;
    d.timeout = std::chrono::milliseconds{o.resolve_timeout_ms};
    dns = std::make_unique<analyze::ReverseDns>(d);
  }
  analyze::ConnectionNamer namer(registry, dns.get());
  analyze::ConnectionWriter writer(stdout, o.json, namer);
  analyze::ConnectionOrder order(
      sort, o.buffer, [&](std::vector<analyze::Connection>& chunk) { writer.write(chunk); });
  analyze::PairingOptions po;
  po.window = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(o.window_seconds));
  po.max_open = o.max_open;
  analyze::ConnectionPairer pairer(po, [&](analyze::Connection&& c) { order.add(std::move(c)); });

  Stats stats;
  for (const std::string& path : o.files) {
    try {
      if (input_kind(path) == InputKind::kCapture)
        analyze_capture(path, o.apply_sampling, pairer, stats);
      else
        analyze_dump(path, pairer, stats);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flowd analyze: %s\n", e.what());
      stats.failed = true;
    }
  }
  pairer.flush();
  order.finish();
  std::fflush(stdout);
  print_summary(stats, pairer.counters(), order.counters(), sort, dns.get());
  return stats.failed ? 1 : 0;
}

}  // namespace flowd
