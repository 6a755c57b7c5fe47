// SPDX-License-Identifier: Apache-2.0
#include "analyze/half_flow.hpp"

#include <algorithm>
#include <vector>

#include "collector/flow_record.hpp"

namespace flowd::analyze {
namespace {

constexpr std::uint32_t kReversePen = 29305;  // RFC 5103

struct ElementInfo {
  Element element;
  std::string_view name;
  std::uint32_t pen;
  std::uint16_t id;
  ElementType type;
};

// In enum order (checked below), so the table is also indexed by the enum.
constexpr ElementInfo kElements[] = {
    {Element::kSourceIPv4Address, "sourceIPv4Address", 0, 8, ElementType::kAddress},
    {Element::kDestinationIPv4Address, "destinationIPv4Address", 0, 12, ElementType::kAddress},
    {Element::kSourceIPv6Address, "sourceIPv6Address", 0, 27, ElementType::kAddress},
    {Element::kDestinationIPv6Address, "destinationIPv6Address", 0, 28, ElementType::kAddress},
    {Element::kSourceTransportPort, "sourceTransportPort", 0, 7, ElementType::kUnsigned},
    {Element::kDestinationTransportPort, "destinationTransportPort", 0, 11, ElementType::kUnsigned},
    {Element::kProtocolIdentifier, "protocolIdentifier", 0, 4, ElementType::kUnsigned},
    {Element::kOctetDeltaCount, "octetDeltaCount", 0, 1, ElementType::kUnsigned},
    {Element::kPacketDeltaCount, "packetDeltaCount", 0, 2, ElementType::kUnsigned},
    {Element::kOctetTotalCount, "octetTotalCount", 0, 85, ElementType::kUnsigned},
    {Element::kPacketTotalCount, "packetTotalCount", 0, 86, ElementType::kUnsigned},
    {Element::kReverseOctetDeltaCount, "reverseOctetDeltaCount", kReversePen, 1,
     ElementType::kUnsigned},
    {Element::kReversePacketDeltaCount, "reversePacketDeltaCount", kReversePen, 2,
     ElementType::kUnsigned},
    {Element::kReverseOctetTotalCount, "reverseOctetTotalCount", kReversePen, 85,
     ElementType::kUnsigned},
    {Element::kReversePacketTotalCount, "reversePacketTotalCount", kReversePen, 86,
     ElementType::kUnsigned},
    {Element::kFlowStartSeconds, "flowStartSeconds", 0, 150, ElementType::kTime},
    {Element::kFlowStartMilliseconds, "flowStartMilliseconds", 0, 152, ElementType::kTime},
    {Element::kFlowStartMicroseconds, "flowStartMicroseconds", 0, 154, ElementType::kTime},
    {Element::kFlowStartNanoseconds, "flowStartNanoseconds", 0, 156, ElementType::kTime},
    {Element::kFlowEndSeconds, "flowEndSeconds", 0, 151, ElementType::kTime},
    {Element::kFlowEndMilliseconds, "flowEndMilliseconds", 0, 153, ElementType::kTime},
    {Element::kFlowEndMicroseconds, "flowEndMicroseconds", 0, 155, ElementType::kTime},
    {Element::kFlowEndNanoseconds, "flowEndNanoseconds", 0, 157, ElementType::kTime},
    {Element::kObservationTimeSeconds, "observationTimeSeconds", 0, 322, ElementType::kTime},
    {Element::kObservationTimeMilliseconds, "observationTimeMilliseconds", 0, 323,
     ElementType::kTime},
    {Element::kObservationTimeMicroseconds, "observationTimeMicroseconds", 0, 324,
     ElementType::kTime},
    {Element::kObservationTimeNanoseconds, "observationTimeNanoseconds", 0, 325,
     ElementType::kTime},
    {Element::kFlowLabelIPv6, "flowLabelIPv6", 0, 31, ElementType::kUnsigned},
    {Element::kReverseFlowLabelIPv6, "reverseFlowLabelIPv6", kReversePen, 31,
     ElementType::kUnsigned},
};
static_assert(std::size(kElements) == kElementCount);
constexpr bool table_in_enum_order() {
  for (std::size_t i = 0; i < kElementCount; ++i)
    if (static_cast<std::size_t>(kElements[i].element) != i) return false;
  return true;
}
static_assert(table_in_enum_order());

constexpr std::size_t idx(Element e) {
  return static_cast<std::size_t>(e);
}

// Finest precision first: when an exporter sends several, they describe the same instant.
constexpr Element kStarts[] = {Element::kFlowStartNanoseconds, Element::kFlowStartMicroseconds,
                               Element::kFlowStartMilliseconds, Element::kFlowStartSeconds};
constexpr Element kEnds[] = {Element::kFlowEndNanoseconds, Element::kFlowEndMicroseconds,
                             Element::kFlowEndMilliseconds, Element::kFlowEndSeconds};
constexpr Element kObservations[] = {
    Element::kObservationTimeNanoseconds, Element::kObservationTimeMicroseconds,
    Element::kObservationTimeMilliseconds, Element::kObservationTimeSeconds};

}  // namespace

std::string_view to_string(TimeSource s) {
  switch (s) {
    case TimeSource::kFlow:
      return "flow";
    case TimeSource::kFlowStart:
      return "flow_start";
    case TimeSource::kFlowEnd:
      return "flow_end";
    case TimeSource::kObservation:
      return "observation";
    case TimeSource::kReceived:
      return "received";
  }
  return "?";
}

ElementType element_type(Element e) {
  return kElements[idx(e)].type;
}

std::optional<Element> element_by_name(std::string_view name) {
  // Called for every member of every dump line, most of them elements analyze does not read: the
  // length picks a handful of candidates (no hashing of the name).
  static constexpr std::size_t kMaxName = 32;
  static const auto* by_length = [] {
    auto* t = new std::array<std::vector<const ElementInfo*>, kMaxName + 1>;
    for (const auto& info : kElements) (*t)[info.name.size()].push_back(&info);
    return t;
  }();
  if (name.size() > kMaxName) return std::nullopt;
  for (const ElementInfo* info : (*by_length)[name.size()])
    if (info->name == name) return info->element;
  return std::nullopt;
}

std::optional<Element> element_by_id(std::uint32_t pen, std::uint16_t id) {
  if (pen != 0 && pen != kReversePen) return std::nullopt;
  for (const auto& info : kElements)
    if (info.pen == pen && info.id == id) return info.element;
  return std::nullopt;
}

void HalfFlowBuilder::set_address(Element e, const IpAddress& a) {
  if (has(e) || element_type(e) != ElementType::kAddress) return;
  set_.set(idx(e));
  address_[idx(e)] = a;  // the address elements are the first four
}

void HalfFlowBuilder::set_unsigned(Element e, std::uint64_t v) {
  if (has(e) || element_type(e) != ElementType::kUnsigned) return;
  set_.set(idx(e));
  unsigned_[idx(e)] = v;
}

void HalfFlowBuilder::set_time(Element e, TimePoint t) {
  if (has(e) || element_type(e) != ElementType::kTime) return;
  set_.set(idx(e));
  time_[idx(e)] = t;
}

BuildResult HalfFlowBuilder::build(std::optional<TimePoint> received, HalfFlow& out) const {
  out = HalfFlow{};
  auto pick_address = [&](Element e) -> const IpAddress* {
    return has(e) ? &address_[idx(e)] : nullptr;
  };
  const IpAddress* src = pick_address(Element::kSourceIPv4Address);
  const IpAddress* dst = pick_address(Element::kDestinationIPv4Address);
  if (!src || !dst) {
    src = pick_address(Element::kSourceIPv6Address);
    dst = pick_address(Element::kDestinationIPv6Address);
  }
  if (!src || !dst || src->family == 0 || src->family != dst->family)
    return BuildResult::kNoAddresses;
  out.source = *src;
  out.destination = *dst;

  auto value = [&](Element e) { return has(e) ? unsigned_[idx(e)] : 0; };
  auto first = [&](Element a, Element b) { return has(a) ? unsigned_[idx(a)] : value(b); };
  out.protocol = static_cast<std::uint8_t>(value(Element::kProtocolIdentifier));
  if (out.protocol != kIcmp && out.protocol != kIcmpV6) {
    // ICMP "ports" are type and code, which differ between a request and its reply: the pairing
    // treats ICMP as one conversation per address pair.
    out.source_port = static_cast<std::uint16_t>(value(Element::kSourceTransportPort));
    out.destination_port = static_cast<std::uint16_t>(value(Element::kDestinationTransportPort));
  }
  out.octets = first(Element::kOctetDeltaCount, Element::kOctetTotalCount);
  out.packets = first(Element::kPacketDeltaCount, Element::kPacketTotalCount);
  out.biflow = has(Element::kReverseOctetDeltaCount) || has(Element::kReverseOctetTotalCount) ||
               has(Element::kReversePacketDeltaCount) || has(Element::kReversePacketTotalCount);
  out.reverse_octets = first(Element::kReverseOctetDeltaCount, Element::kReverseOctetTotalCount);
  out.reverse_packets = first(Element::kReversePacketDeltaCount, Element::kReversePacketTotalCount);
  std::uint64_t label = has(Element::kFlowLabelIPv6) ? value(Element::kFlowLabelIPv6)
                                                     : value(Element::kReverseFlowLabelIPv6);
  out.flow_label = static_cast<std::uint32_t>(label & 0xFFFFF);

  auto finest = [&](const auto& list) -> std::optional<TimePoint> {
    for (Element e : list)
      if (has(e)) return time_[idx(e)];
    return std::nullopt;
  };
  auto start = finest(kStarts), end = finest(kEnds);
  if (start && end) {
    out.start = *start;
    out.end = *end;
    out.time_source = TimeSource::kFlow;
  } else if (start) {
    out.start = out.end = *start;
    out.time_source = TimeSource::kFlowStart;
  } else if (end) {
    out.start = out.end = *end;
    out.time_source = TimeSource::kFlowEnd;
  } else if (auto seen = finest(kObservations)) {
    out.start = out.end = *seen;
    out.time_source = TimeSource::kObservation;
  } else if (received) {
    out.start = out.end = *received;
    out.time_source = TimeSource::kReceived;
  } else {
    return BuildResult::kNoTime;
  }
  // An exporter whose clock steps back may send end < start; a duration is never negative.
  if (out.end < out.start) std::swap(out.start, out.end);
  return BuildResult::kOk;
}

BuildResult half_flow_from_record(const collector::FlowRecord& record, HalfFlowBuilder& scratch,
                                  HalfFlow& out) {
  if (record.options) return BuildResult::kOptions;
  scratch.clear();
  for (const collector::Field& f : record.fields) {
    auto e = element_by_id(f.pen, f.id);
    if (!e) continue;
    const collector::FieldValue& v = f.value;
    switch (element_type(*e)) {
      case ElementType::kAddress:
        if (v.kind == collector::ValueKind::kIpv4 || v.kind == collector::ValueKind::kIpv6)
          scratch.set_address(*e, v.ip);
        break;
      case ElementType::kUnsigned:
        if (v.kind == collector::ValueKind::kUnsigned) scratch.set_unsigned(*e, v.u);
        break;
      case ElementType::kTime:
        if (v.kind == collector::ValueKind::kDateTime) scratch.set_time(*e, v.time);
        break;
    }
  }
  return scratch.build(record.received, out);
}

}  // namespace flowd::analyze
