// SPDX-License-Identifier: Apache-2.0
// The stateful NetFlow/IPFIX decoder: pure (no sockets, no logging), so it can be fuzzed and used
// both by the `netflow` plugin and by `flowd decode`. Not thread-safe: one Decoder per receive
// thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "collector/flow_record.hpp"

namespace flowd::collector {

// Why (part of) a packet was not decoded. Each has a counter in the plugin.
enum class DecodeError : std::uint8_t {
  kTooShort,       // shorter than the version's header
  kBadVersion,     // not 1, 5, 9 or 10
  kBadLength,      // header length/count does not fit the datagram (v1/v5 count, IPFIX length)
  kBadSetLength,   // a (flow)set length < 4 or beyond the message
  kBadTemplate,    // a template whose field count or lengths do not fit its set, or record length 0
  kBadRecord,      // a data record that cannot be decoded (variable length past the set end...)
  kTemplateLimit,  // a template refused: too many for one exporter, or larger than its byte bound
  kPendingOverflow,    // data held for a missing template was dropped (count, bytes or age bound)
  kWithdrawalIgnored,  // IPFIX template withdrawal over UDP (RFC 7011 §8): ignored
  kWithdrawnTemplate,  // IPFIX data set for a template withdrawn earlier (TCP): dropped
  kNoTemplate,         // IPFIX-over-TCP data set with no template before it in the stream: dropped
};
inline constexpr std::size_t kDecodeErrorCount = 11;
std::string_view to_string(DecodeError e);

class TemplateBudget;    // template_budget.hpp
struct DecoderSnapshot;  // decoder_snapshot.hpp
struct RestoreResult;

// Why the byte bounds of a TemplateBudget evicted a template to make room for another (counted in
// flowd_netflow_templates_evicted_total{reason}).
enum class TemplateEviction : std::uint8_t {
  kExporterBytes,  // its exporter address was at max_template_bytes_per_exporter
  kTotalBytes,     // all exporters together were at max_template_bytes
};
inline constexpr std::size_t kTemplateEvictionCount = 2;
// Why a template was not stored (flowd_netflow_templates_refused_total{reason}).
enum class TemplateRefusal : std::uint8_t {
  kTooLarge,      // larger on its own than max_template_bytes_per_exporter
  kMaxTemplates,  // its exporter (address and port) held max_templates templates
};
inline constexpr std::size_t kTemplateRefusalCount = 2;
std::string_view to_string(TemplateEviction e);  // "exporter_bytes", "total_bytes"
std::string_view to_string(TemplateRefusal r);   // "too_large", "max_templates"

struct DecoderLimits {
  std::chrono::seconds template_timeout{1800};    // UDP template lifetime
  std::size_t max_templates_per_exporter = 4096;  // per exporter address and port (v9: address)
  // Bytes the templates may hold (template_budget.hpp says what is counted): per exporter address,
  // every port and TCP session of it together, and in total. The oldest are evicted to make room.
  std::size_t max_template_bytes_per_exporter = 4 << 20;
  std::size_t max_template_bytes = 64 << 20;
  // The budget those bounds live in, shared by every decoder of one collector (receive workers and
  // TCP sessions) so that they hold across all of them; null: the decoder makes its own.
  std::shared_ptr<TemplateBudget> budget;
  std::size_t max_pending_records = 10000;  // data held while its template is missing, per decoder
  std::size_t max_pending_bytes = 4 << 20;
  // Of which one exporter address (every port) may hold this much: its own oldest sets make room
  // first, so that one sender cannot push every other exporter's held data out.
  std::size_t max_pending_bytes_per_exporter = 1 << 20;
  std::chrono::seconds max_pending_age{60};
  bool udp = true;  // false: a TCP session (withdrawals honoured, no expiry)
  // Multiply packet and octet counters of sampled records by their sampling rate (v5 header, v9 and
  // IPFIX sampling options matched by sampler/selector id, or a record's own samplingInterval).
  bool apply_sampling = false;
};

struct DecodeResult {
  int version = 0;
  std::size_t records = 0;          // appended to `out`, including held records released now
  std::size_t templates = 0;        // template records accepted
  std::size_t pending = 0;          // data records held for a missing template
  std::uint64_t sequence_lost = 0;  // records/packets missing according to sequence numbers
  std::vector<DecodeError> errors;  // one entry per problem found
  // Templates evicted by the byte bounds to make room for this packet's (of any exporter sharing
  // the budget), and templates of this packet refused, by reason; `evicted_from` is the exporter
  // address of the last one evicted (for the log).
  std::array<std::uint32_t, kTemplateEvictionCount> templates_evicted{};
  std::array<std::uint32_t, kTemplateRefusalCount> templates_refused{};
  IpAddress evicted_from;
};

// The templates one decoder holds for one exporter address and observation domain (v9 source id),
// whatever their version and source port: what flowd_netflow_templates{exporter,
// observation_domain} shows.
struct DomainTemplates {
  IpAddress address;
  std::uint32_t domain = 0;
  std::size_t templates = 0;
};

class Decoder {
 public:
  explicit Decoder(DecoderLimits limits = {});
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;

  // Decodes one datagram (or, for TCP, one IPFIX message) from `from`, appending records to `out`.
  DecodeResult decode(std::span<const std::uint8_t> packet, const Exporter& from, TimePoint now,
                      RecordBatch& out);
  // Drops expired templates and too-old pending records, and erases the templates another decoder
  // sharing the budget evicted; returns how many records were dropped.
  std::size_t expire(TimePoint now);
  std::size_t template_count() const;
  // Appends the templates held per exporter address and domain to `out`, in key order; a pair may
  // appear more than once (IPFIX keeps templates per source port). O(templates held).
  void count_templates(std::vector<DomainTemplates>& out) const;
  std::size_t pending_count() const;
  std::size_t pending_bytes() const;  // bytes of the data sets held (their bodies)
  // Exporter domains with sequence, sampling or init-time state (expires with templates over UDP).
  std::size_t exporter_state_count() const;
  // Forgets everything learnt from one exporter (a closed TCP session).
  void forget(const Exporter& from);
  // The templates and per-domain sampling/init-time state learnt so far (decoder_snapshot.hpp), to
  // be kept across a restart. UDP decoders only: a TCP session's state ends with it.
  DecoderSnapshot snapshot() const;
  // Takes back what snapshot() gave (possibly from another process, read from a file: every entry
  // is checked as the wire's would be). A template keeps the lifetime it had left at `now`; one
  // older than template_timeout, or one the bounds refuse, is left out and counted.
  RestoreResult restore(const DecoderSnapshot& saved, TimePoint now);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// IANA IPFIX name of an information element ("sourceIPv4Address"), RFC 5103 reverse names for PEN
// 29305 ("reverseOctetDeltaCount"), flowd's sFlow names for PEN 4300 ("sflowSamplePool"),
// "id<N>" / "e<PEN>id<N>" for unknown ones.
std::string ie_name(std::uint32_t pen, std::uint16_t id);

}  // namespace flowd::collector
