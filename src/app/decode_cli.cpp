// SPDX-License-Identifier: Apache-2.0
#include "app/decode_cli.hpp"

#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/record_json.hpp"
#include "collector/sflow.hpp"

namespace flowd {
namespace {

using collector::DecodeError;
using collector::Decoder;
using collector::SflowDecoder;
using collector::SflowError;

struct Totals {
  std::size_t payloads = 0, records = 0;
  std::array<std::size_t, collector::kDecodeErrorCount> errors{};
  std::size_t sflow_datagrams = 0, sflow_counter_samples = 0, sflow_extended_records = 0;
  std::uint64_t sflow_lost = 0;
  std::array<std::size_t, collector::kSflowErrorCount> sflow_errors{};
};

// NetFlow/IPFIX and sFlow share the capture: a payload whose first 32-bit word is 5 is sFlow v5
// (NetFlow and IPFIX put a 16-bit version first, so their first word is never 5).
struct Decoders {
  Decoder& udp;
  Decoder& tcp;
  SflowDecoder& sflow;
};

void decode_one(Decoders& d, bool tcp, std::span<const std::uint8_t> bytes,
                const collector::Exporter& from, TimePoint t, Totals& totals) {
  collector::RecordBatch out;
  ++totals.payloads;
  if (!tcp && collector::looks_like_sflow(bytes)) {
    auto r = d.sflow.decode(bytes, from, t, out);
    ++totals.sflow_datagrams;
    totals.sflow_counter_samples += r.counter_samples;
    totals.sflow_extended_records += r.extended_records;
    totals.sflow_lost += r.sequence_lost;
    for (std::size_t i = 0; i < r.errors.size(); ++i) totals.sflow_errors[i] += r.errors[i];
  } else {
    auto r = (tcp ? d.tcp : d.udp).decode(bytes, from, t, out);
    for (auto e : r.errors) ++totals.errors[static_cast<std::size_t>(e)];
  }
  for (const auto& rec : out) {
    std::cout << collector::to_json(rec).dump() << '\n';
    ++totals.records;
  }
}

bool parse_hex_line(const std::string& line, std::vector<std::uint8_t>& out) {
  out.clear();
  int hi = -1;
  for (char c : line) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == ':') continue;
    int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
            : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
            : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                        : -1;
    if (v < 0) return false;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return hi < 0;
}

}  // namespace

int decode_command(const std::vector<std::string>& args) {
  bool hex = false, sampling = false;
  std::vector<std::string> paths;
  for (const auto& a : args) {
    if (a == "--hex")
      hex = true;
    else if (a == "--apply-sampling")
      sampling = true;
    else
      paths.push_back(a);
  }
  std::string path = paths.size() == 1 ? paths[0] : std::string();
  if (path.empty()) {
    std::fprintf(stderr,
                 "usage: flowd decode [--hex] [--apply-sampling] FILE|-   (a pcap/pcapng of "
                 "NetFlow/IPFIX/sFlow exports, or hex payloads one per line)\n");
    return 2;
  }
  collector::DecoderLimits udp_limits;
  udp_limits.apply_sampling = sampling;
  Decoder udp(udp_limits);
  collector::DecoderLimits tcp_limits = udp_limits;
  tcp_limits.udp = false;
  Decoder tcp(tcp_limits);
  collector::SflowLimits sflow_limits;
  sflow_limits.apply_sampling = sampling;
  SflowDecoder sflow(sflow_limits);
  Decoders decoders{udp, tcp, sflow};
  Totals totals;
  std::size_t skipped = 0;
  try {
    if (hex) {
      std::ifstream file;
      if (path != "-") {
        file.open(path);
        if (!file) throw std::runtime_error(path + ": cannot open");
      }
      std::istream& in = path == "-" ? std::cin : file;
      collector::Exporter nobody;
      nobody.address = *IpAddress::parse("0.0.0.0");
      std::string line;
      std::vector<std::uint8_t> bytes;
      std::size_t n = 0;
      while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        if (!parse_hex_line(line, bytes)) {
          std::fprintf(stderr, "%s:%zu: not hex; skipped\n", path.c_str(), n);
          ++skipped;
          continue;
        }
        decode_one(decoders, false, bytes, nobody, Clock::now(), totals);
      }
    } else {
      if (path == "-") path = "/dev/stdin";
      collector::read_capture(
          path,
          [&](const collector::CapturedPayload& p) {
            decode_one(decoders, p.tcp, p.bytes, p.exporter, p.time, totals);
          },
          skipped);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowd decode: %s\n", e.what());
    return 1;
  }
  std::cout.flush();
  std::fprintf(stderr, "flowd decode: %zu payloads, %zu records", totals.payloads, totals.records);
  if (skipped) std::fprintf(stderr, ", %zu frames/lines skipped", skipped);
  std::fprintf(stderr, "\n");
  for (std::size_t i = 0; i < totals.errors.size(); ++i)
    if (totals.errors[i])
      std::fprintf(stderr, "  %zu x %s\n", totals.errors[i],
                   std::string(collector::to_string(static_cast<DecodeError>(i))).c_str());
  if (totals.sflow_datagrams) {
    std::fprintf(
        stderr, "  sflow: %zu datagrams, %zu counter samples and %zu extended records skipped",
        totals.sflow_datagrams, totals.sflow_counter_samples, totals.sflow_extended_records);
    if (totals.sflow_lost)
      std::fprintf(stderr, ", %llu datagrams lost",
                   static_cast<unsigned long long>(totals.sflow_lost));
    std::fprintf(stderr, "\n");
  }
  for (std::size_t i = 0; i < totals.sflow_errors.size(); ++i)
    if (totals.sflow_errors[i])
      std::fprintf(stderr, "  %zu x sflow %s\n", totals.sflow_errors[i],
                   std::string(collector::to_string(static_cast<SflowError>(i))).c_str());
  std::size_t held = udp.pending_count() + tcp.pending_count();
  if (held) std::fprintf(stderr, "  %zu records held for a template that never arrived\n", held);
  return 0;
}

}  // namespace flowd
