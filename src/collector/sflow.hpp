// SPDX-License-Identifier: Apache-2.0
// The sFlow version 5 decoder (sflow.org, sflow_version_5.txt): datagrams of flow samples become
// FlowRecords, one per flow sample, with IANA IPFIX elements where one exists and InMon enterprise
// (PEN 4300) elements for the sFlow-only values. Pure (no sockets, no logging) so that `flowd
// decode`, the fuzzer and a receive thread share it. Not thread-safe: one SflowDecoder per thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "collector/flow_record.hpp"
#include "collector/ie_names.hpp"

namespace flowd::collector {

// Why (part of) a datagram was not decoded: a closed set, each with a counter in the caller.
//
// Policy when a length lies: the datagram is walked sample by sample and each sample record by
// record; at the first length that points past its container (a sample past the datagram, a flow
// record past its sample) the walk of that container stops, and everything decoded before it is
// kept. A flow sample is still reported with the records read before its bad one. Lengths that fit
// but disagree with their content (a record too short for its fixed fields, a header_length past
// its record, padding) only lose that record: its length still says where the next one starts.
enum class SflowError : std::uint8_t {
  kTooShort,             // shorter than the datagram header
  kBadVersion,           // the first word is not 5
  kBadAgentAddress,      // agent address type not 0 (unknown), 1 (IPv4) or 2 (IPv6): stops
  kBadSampleLength,      // a sample header or length runs past the datagram end: stops the datagram
  kSampleCount,          // fewer samples than the header says, or bytes left after them
  kBadFlowSample,        // a flow sample shorter than its fixed fields: that sample is skipped
  kBadRecordLength,      // a flow record header or length runs past its sample: stops that sample
  kRecordCount,          // fewer flow records than the sample says, or bytes left after them
  kBadRecord,            // sampled_header/_ethernet/_ipv4/_ipv6 shorter than its fixed fields
  kBadHeaderLength,      // sampled_header header_length beyond its record: that record is skipped
  kBadPadding,           // a length not a multiple of 4, or an opaque whose XDR padding is missing
  kUnknownSampleFormat,  // enterprise != 0 or a format other than 1-4: skipped by its length
  kUnknownRecordFormat,  // a flow record that is neither 1-4 nor an extended (>= 1001) one: skipped
  kUnknownHeaderProtocol,  // sampled_header of a header_protocol other than 1, 11, 12: kept, not
                           // parsed
  kAgentLimit,             // too many agents tracked: this one's sequence numbers are not checked
};
inline constexpr std::size_t kSflowErrorCount = 15;
std::string_view to_string(SflowError e);

// The sFlow-only values are exported as enterprise elements of InMon's PEN (kInmonPen, 4300; names
// in ie_name(): "sflowSamplePool"...). The ids are flowd's own numbering.
enum class SflowElement : std::uint16_t {
  kAgentAddress = 1,            // datagram agent_address (IPv4 or IPv6)
  kSubAgentId = 2,              // datagram sub_agent_id
  kDatagramSequenceNumber = 3,  // datagram sequence_number
  kUptime = 4,                  // datagram uptime (ms since the agent booted)
  kSampleSequenceNumber = 5,    // flow sample sequence_number
  kSourceIdType = 6,            // flow sample source_id class (0 ifIndex, 1 VLAN, 2 entPhysical...)
  kSourceIdIndex = 7,           // flow sample source_id index
  kSamplePool = 8,              // flow sample sample_pool (packets that could have been sampled)
  kDrops = 9,                   // flow sample drops (samples lost for lack of resources)
  kInputFormat = 10,            // input interface format when not 0 (1 discarded, 2 multiple)
  kInputValue = 11,             // ... and its value (discard reason / interface count)
  kOutputFormat = 12,           // output interface format when not 0
  kOutputValue = 13,            // ... and its value
  kHeaderProtocol = 14,         // sampled_header header_protocol
  kStripped = 15,               // sampled_header stripped (bytes removed from the frame, e.g. FCS)
  kHeaderLength = 16,           // sampled_header header_length (bytes of the frame present)
};

struct SflowLimits {
  // Multiply packetDeltaCount and octetDeltaCount by the sample's sampling_rate (when > 1).
  bool apply_sampling = false;
  // Sequence state of an agent (address, sub-agent) silent for this long is forgotten.
  std::chrono::seconds agent_timeout{1800};
  // At most this many agents' sequence numbers are tracked (reason kAgentLimit beyond).
  std::size_t max_agents = 10000;
};

struct SflowResult {
  std::uint32_t agent_sequence = 0;  // datagram sequence_number (when the header was read)
  std::size_t records = 0;           // flow samples appended to `out`
  std::size_t counter_samples = 0;  // counters_sample (2) and counters_sample_expanded (4): skipped
  std::size_t extended_records = 0;  // extended flow records (format >= 1001): skipped
  std::uint64_t sequence_lost = 0;   // datagrams missing according to the agent's sequence number
  bool agent_restarted = false;      // the sequence number jumped back: a new agent session
  std::array<std::uint32_t, kSflowErrorCount> errors{};  // occurrences per SflowError

  std::size_t error_count() const;
  bool has(SflowError e) const { return errors[static_cast<std::size_t>(e)] != 0; }
};

class SflowDecoder {
 public:
  explicit SflowDecoder(SflowLimits limits = {});
  ~SflowDecoder();
  SflowDecoder(SflowDecoder&&) noexcept;
  SflowDecoder& operator=(SflowDecoder&&) noexcept;

  // Decodes one sFlow v5 datagram (a UDP payload) from `from`, received at `now`, appending one
  // FlowRecord per flow sample to `out` (protocol kSflow, version 5, domain = sub_agent_id). Never
  // reads outside `datagram`; problems are counted in the result (see SflowError for the policy).
  SflowResult decode(std::span<const std::uint8_t> datagram, const Exporter& from, TimePoint now,
                     RecordBatch& out);
  // Forgets agents silent for longer than agent_timeout; returns how many.
  std::size_t expire(TimePoint now);
  std::size_t agent_count() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// True when `datagram` starts like sFlow v5: its first 32-bit word is 5. NetFlow and IPFIX start
// with a 16-bit version (1, 5, 9, 10), so their first word is at least 0x00010000 and never 00 00
// 00 05.
bool looks_like_sflow(std::span<const std::uint8_t> datagram);

}  // namespace flowd::collector
