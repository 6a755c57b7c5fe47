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
#include "collector/template_store.hpp"
#include "collector/values.hpp"

namespace flowd::collector {

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
  TimePoint seen{};                              // last packet; UDP state expires like templates
  std::optional<std::uint32_t> expected;         // next sequence number
  std::optional<std::uint64_t> system_init_ms;   // IPFIX systemInitTimeMilliseconds (options data)
  std::optional<std::uint64_t> default_rate;     // sampling options that name no sampler
  std::map<std::uint64_t, std::uint64_t> rates;  // sampler or selector id -> 1-in-N
  static constexpr std::size_t kMaxRates = 256;  // a new id beyond: not learnt
  // IPFIX over TCP: template ids withdrawn and not defined again, so that data for them is counted
  // as withdrawn_template rather than no_template. Only a label: bounded, and forgotten past the
  // bound.
  std::set<std::uint16_t> withdrawn;
  static constexpr std::size_t kMaxWithdrawn = 1024;
};

struct Decoder::State {
  DecoderLimits limits;
  TemplateStore templates;
  std::deque<PendingSet> pending;
  std::size_t pending_bytes = 0;
  std::map<ExporterKey, std::size_t>
      pending_by_address;                      // port 0; bytes, for the per-address bound
  std::map<TemplateKey, DomainState> domains;  // id = 0; see domain_key()
  // Observation domains are named by the exporter (any 32-bit id in any datagram) and expire only
  // with template_timeout: past this many, a new one gets `untracked` (fresh each time: no sequence
  // or sampling state kept), so junk ids cannot grow the table. Real exporters have a handful.
  static constexpr std::size_t kMaxDomains = 1024;
  DomainState untracked;
  std::uint64_t domains_untracked = 0;  // datagrams of domains past the bound

  // --- templates and held data (template_store.cpp) ---
  // A template that parsed (v9 or IPFIX): stored (counted in result.templates), and every data set
  // held for it decoded into `out`; false (and kTemplateLimit) if the exporter has too many.
  bool commit_template(const TemplateKey& key, Template t, TimePoint now, RecordBatch& out,
                       DecodeResult& result);
  void hold(PendingSet p, DecodeResult& result);
  // Erases one held set (moved into `take` if given), keeping pending_bytes and
  // pending_by_address; returns the next.
  std::deque<PendingSet>::iterator drop_pending(std::deque<PendingSet>::iterator it,
                                                PendingSet* take = nullptr);
  // Decodes and appends every held set waiting for `key` (whose template is now known).
  void release(const TemplateKey& key, RecordBatch& out, DecodeResult& result, TimePoint now);
  std::size_t drop_old_pending(TimePoint now);
  // --- sequence numbers and data records (decoder.cpp) ---
  DomainState& domain(const Exporter& from, int version, std::uint32_t domain, TimePoint now);
  void check_sequence(DomainState& d, std::uint32_t seq, std::optional<std::uint32_t> next,
                      DecodeResult& result);
  // --- sampling (sampling.cpp) ---
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
// Multiplies the packet and octet counters (sampling.cpp) (delta, total, and their RFC 5103
// reverses) by `rate`.
void scale_counters(FieldWriter& w, std::uint64_t rate);
// What relative times in a record are relative to (relative_time.hpp).
struct TimeBase {
  std::int64_t export_ms = 0;  // the export time, ms since the Unix epoch
  std::optional<std::uint32_t>
      uptime_ms;  // the exporter's uptime at export (v5/v9 header; IPFIX from 160)
  std::optional<std::int64_t>
      export_secs;  // IPFIX export time (seconds) for the delta-microsecond elements
};
// Adds the absolute times the record's relative ones stand for, at the field positions `where`
// found once per template: flowStartMilliseconds/flowEndMilliseconds (152/153) from
// flowStart/EndSysUpTime (22/21), and flowStartMicroseconds/flowEndMicroseconds (154/155) from
// flowStart/EndDeltaMicroseconds (158/159), unless the record has them already.
void derive_absolute_times(FieldWriter& w, const TimeBase& base, const RelativeTimes& where);

}  // namespace flowd::collector
