// SPDX-License-Identifier: Apache-2.0
// One flow record's view of a connection — who sent to whom, how much and when — built from the
// RFC 7012 (and RFC 5103 reverse) information elements the record has, wherever it came from: a
// decoded export (collector::FlowRecord) or a line of a JSON dump. Pure: no I/O, no logging.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <optional>
#include <string_view>

#include "flowd/flow_id.hpp"

namespace flowd::collector {
struct FlowRecord;
}

namespace flowd::analyze {

// Where a record's start and end came from, best first. A connection reports the worst source
// among its records, so a person sees when a time is only the export's arrival.
enum class TimeSource : std::uint8_t {
  kFlow,         // flowStart* and flowEnd* elements
  kFlowStart,    // flowStart* only: end = start
  kFlowEnd,      // flowEnd* only: start = end
  kObservation,  // observationTime* (a single point in time)
  kReceived,     // none of those: the time the export was received (dump "time", capture time)
};
std::string_view to_string(TimeSource s);

// The information elements analyze reads. Names are the IANA ones (RFC 7012) and, for reverse*,
// RFC 5103's (PEN 29305).
enum class Element : std::uint8_t {
  kSourceIPv4Address,
  kDestinationIPv4Address,
  kSourceIPv6Address,
  kDestinationIPv6Address,
  kSourceTransportPort,
  kDestinationTransportPort,
  kProtocolIdentifier,
  kOctetDeltaCount,
  kPacketDeltaCount,
  kOctetTotalCount,
  kPacketTotalCount,
  kReverseOctetDeltaCount,
  kReversePacketDeltaCount,
  kReverseOctetTotalCount,
  kReversePacketTotalCount,
  kFlowStartSeconds,
  kFlowStartMilliseconds,
  kFlowStartMicroseconds,
  kFlowStartNanoseconds,
  kFlowEndSeconds,
  kFlowEndMilliseconds,
  kFlowEndMicroseconds,
  kFlowEndNanoseconds,
  kObservationTimeSeconds,
  kObservationTimeMilliseconds,
  kObservationTimeMicroseconds,
  kObservationTimeNanoseconds,
  kFlowLabelIPv6,
  kReverseFlowLabelIPv6,
};
inline constexpr std::size_t kElementCount = 29;

enum class ElementType : std::uint8_t { kAddress, kUnsigned, kTime };
ElementType element_type(Element e);
// By IANA / RFC 5103 name ("octetDeltaCount", "reverseOctetDeltaCount"); nullopt for the others.
std::optional<Element> element_by_name(std::string_view name);
// By (PEN, element id): PEN 0 is IANA, 29305 the RFC 5103 reverse elements.
std::optional<Element> element_by_id(std::uint32_t pen, std::uint16_t id);

// protocolIdentifier values whose "ports" are not ports (ICMP type/code).
inline constexpr std::uint8_t kIcmp = 1;
inline constexpr std::uint8_t kIcmpV6 = 58;

struct HalfFlow {
  std::uint8_t protocol = 0;  // protocolIdentifier; 0 when the record has none
  IpAddress source;
  IpAddress destination;
  std::uint16_t source_port = 0;  // 0 for ICMP/ICMPv6 and when absent
  std::uint16_t destination_port = 0;
  std::uint64_t octets = 0;  // source -> destination (octetDeltaCount, else octetTotalCount)
  std::uint64_t packets = 0;
  std::uint64_t reverse_octets = 0;  // destination -> source (RFC 5103 reverse elements)
  std::uint64_t reverse_packets = 0;
  bool biflow = false;  // the record has reverse counters: it holds both directions
  TimePoint start{};
  TimePoint end{};  // >= start
  TimeSource time_source = TimeSource::kReceived;
  std::uint32_t flow_label = 0;  // flowLabelIPv6 (else its reverse), 20 bits; 0 when absent
};

// Why a record is not a flow analyze can use.
enum class BuildResult : std::uint8_t {
  kOk,
  kOptions,      // an options record (sampling, interface names...)
  kNoAddresses,  // no source and destination address of one family
  kNoTime,       // neither flow times nor a receive time (a dump line without "time")
};

// Collects the element values of one record, then builds its HalfFlow. When an element comes
// twice, the first value counts. Reusable: clear() between records.
class HalfFlowBuilder {
 public:
  void clear() { set_.reset(); }
  void set_address(Element e, const IpAddress& a);
  void set_unsigned(Element e, std::uint64_t v);
  void set_time(Element e, TimePoint t);
  bool has(Element e) const { return set_.test(static_cast<std::size_t>(e)); }

  // `received` is when the export arrived: the fallback for records without flow times.
  // Counters prefer the delta elements over the total ones; times the finest precision given.
  BuildResult build(std::optional<TimePoint> received, HalfFlow& out) const;

 private:
  std::bitset<kElementCount> set_;
  std::array<std::uint64_t, kElementCount> unsigned_{};
  std::array<TimePoint, kElementCount> time_{};
  std::array<IpAddress, 4> address_{};  // the four address elements, in enum order
};

// A decoded export record as a HalfFlow (its receive time is the fallback time).
BuildResult half_flow_from_record(const collector::FlowRecord& record, HalfFlowBuilder& scratch,
                                  HalfFlow& out);

}  // namespace flowd::analyze
