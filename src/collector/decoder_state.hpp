// SPDX-License-Identifier: Apache-2.0
// Internal state and helpers shared by the NetFlow v1/v5, v9 and IPFIX decoders (not a public
// header).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/ie_names.hpp"

namespace flowd::collector {

using Bytes = std::span<const std::uint8_t>;

inline std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t get32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}
inline std::uint64_t getn(const std::uint8_t* p, std::size_t n) {  // n <= 8, big-endian
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// Who a template/sequence belongs to. v9 keys by exporter address only (port 0), as RFC 3954 asks;
// IPFIX by address and port (RFC 7011 §8.4: the Transport Session).
struct ExporterKey {
  int family = 0;
  std::array<std::uint8_t, 16> addr{};
  std::uint16_t port = 0;
  auto operator<=>(const ExporterKey&) const = default;
};

struct TemplateKey {
  ExporterKey exporter;
  std::uint8_t version = 0;
  std::uint32_t domain = 0;
  std::uint16_t id = 0;  // 0 in sequence keys
  auto operator<=>(const TemplateKey&) const = default;
};

inline constexpr std::uint16_t kVariableLength = 65535;

struct FieldSpec {
  std::uint32_t pen = 0;
  std::uint16_t id = 0;
  std::uint16_t length = 0;  // kVariableLength = IPFIX variable-length encoding
  IeType type = IeType::kOctetArray;
};

// Where a template's relative times are: field positions of 22, 21, 158, 159 (-1: absent, or the
// absolute element 152/153/154/155 is there too, so nothing is derived).
struct RelativeTimes {
  static constexpr std::size_t kRules = 4;
  std::array<std::int16_t, kRules> relative{-1, -1, -1, -1};
  std::array<bool, kRules> absolute{};
  bool any() const { return relative[0] >= 0 || relative[1] >= 0 || relative[2] >= 0 || relative[3] >= 0; }
};

struct Template {
  std::vector<FieldSpec> fields;
  std::uint16_t scope_count = 0;
  bool options = false;
  std::size_t min_record = 0;  // fixed lengths + 1 byte per variable-length field
  TimePoint seen{};
  std::vector<std::uint8_t> raw;  // IPFIX: the template record as received (resends are compared)
  RelativeTimes relative_times;   // where 22/21/158/159 are (see derive_absolute_times)
  KeyFields keys;                 // where the 5-tuple, label and counters are (FlowRecord::keys)
  bool sampling_fields = false;   // has 34/48/302 (see has_sampling_fields)
  bool same_layout(const Template& o) const;
};

// What a data set needs from its message to be decoded, possibly later (held data).
struct MessageContext {
  int version = 0;
  Exporter from;
  TimePoint received{};
  std::uint32_t domain = 0;
  std::uint32_t sys_uptime = 0;  // v9
  std::uint32_t unix_secs = 0;   // v9 unix_secs / IPFIX export_time
};

struct PendingSet {
  TemplateKey key;
  MessageContext ctx;
  std::vector<std::uint8_t> body;  // the set's records, without the 4-byte set header
};

// What is known of one exporter's observation domain (v9 source id, v5 engine) besides templates.
struct DomainState {
  TimePoint seen{};                             // last packet; UDP state expires like templates
  std::optional<std::uint32_t> expected;        // next sequence number
  std::optional<std::uint64_t> system_init_ms;  // IPFIX systemInitTimeMilliseconds (options data)
  std::optional<std::uint64_t> default_rate;    // sampling options that name no sampler
  std::map<std::uint64_t, std::uint64_t> rates; // sampler or selector id -> 1-in-N
  // IPFIX over TCP: template ids withdrawn and not defined again, so that data for them is counted as
  // withdrawn_template rather than no_template. Only a label: bounded, and forgotten past the bound.
  std::set<std::uint16_t> withdrawn;
  static constexpr std::size_t kMaxWithdrawn = 1024;
};

struct Decoder::State {
  DecoderLimits limits;
  std::map<TemplateKey, Template> templates;
  std::map<ExporterKey, std::size_t> template_counts;
  std::deque<PendingSet> pending;
  std::size_t pending_bytes = 0;
  std::map<TemplateKey, DomainState> domains;  // id = 0; see domain_key()

  // --- shared helpers (decoder.cpp) ---
  const Template* find_template(const TemplateKey& key, TimePoint now);
  // Stores a template; false (and kTemplateLimit) if the exporter has too many.
  bool store_template(const TemplateKey& key, Template t, TimePoint now, DecodeResult& result);
  void erase_template(const TemplateKey& key);
  void hold(PendingSet p, DecodeResult& result);
  // Decodes and appends every held set waiting for `key` (whose template is now known).
  void release(const TemplateKey& key, RecordBatch& out, DecodeResult& result,
               TimePoint now);
  std::size_t drop_old_pending(TimePoint now);
  DomainState& domain(const Exporter& from, int version, std::uint32_t domain, TimePoint now);
  void check_sequence(DomainState& d, std::uint32_t seq, std::optional<std::uint32_t> next,
                      DecodeResult& result);
  // Remembers the sampling rate an options record announces (v9 34/50, IPFIX 305+306, 34, 50).
  void learn_sampling(const FieldWriter& w, const MessageContext& ctx);
  // The rate that applies to a data record: its own samplingInterval, else its sampler/selector
  // id's, else the domain's; 0 if unknown.
  std::uint64_t sampling_rate(const FieldWriter& w, const MessageContext& ctx);
  // Decodes the records of one data set; false on a record that does not fit (kBadRecord).
  // `count` receives the number of records decoded.
  bool decode_data_set(const Template& t, std::uint16_t template_id, Bytes body,
                       const MessageContext& ctx, RecordBatch& out, std::size_t& count);

  // --- per version ---
  void decode_v1v5(Bytes packet, const Exporter& from, TimePoint now, RecordBatch& out,
                   DecodeResult& result);
  void decode_v9(Bytes packet, const Exporter& from, TimePoint now, RecordBatch& out,
                 DecodeResult& result);
  void decode_ipfix(Bytes packet, const Exporter& from, TimePoint now, RecordBatch& out,
                    DecodeResult& result);
};

ExporterKey exporter_key(const Exporter& from, bool with_port);
// Multiplies the packet and octet counters (delta, total, and their RFC 5103 reverses) by `rate`.
void scale_counters(FieldWriter& w, std::uint64_t rate);
// Decodes one value of `length` bytes as `type` (reduced-size encodings widened; otherwise octets).
void decode_value(IeType type, const std::uint8_t* p, std::size_t length, FieldValue& out);
TimePoint from_millis(std::int64_t ms);
// What relative times in a record are relative to (relative_time.hpp).
struct TimeBase {
  std::int64_t export_ms = 0;                // the export time, ms since the Unix epoch
  std::optional<std::uint32_t> uptime_ms;    // the exporter's uptime at export (v5/v9 header; IPFIX from 160)
  std::optional<std::int64_t> export_secs;   // IPFIX export time (seconds) for the delta-microsecond elements
};
// Adds the absolute times the record's relative ones stand for, at the field positions `where` found
// once per template: flowStartMilliseconds/flowEndMilliseconds (152/153) from flowStart/EndSysUpTime
// (22/21), and flowStartMicroseconds/flowEndMicroseconds (154/155) from flowStart/EndDeltaMicroseconds
// (158/159), unless the record has them already.
void derive_absolute_times(FieldWriter& w, const TimeBase& base, const RelativeTimes& where);
RelativeTimes relative_times_of(const std::vector<FieldSpec>& fields);
KeyFields key_fields_of(const std::vector<FieldSpec>& fields);
// Whether a template has samplingInterval, samplerId or selectorId (34/48/302): only then does the
// sampling rate need a look at the record itself.
bool has_sampling_fields(const std::vector<FieldSpec>& fields);

}  // namespace flowd::collector
