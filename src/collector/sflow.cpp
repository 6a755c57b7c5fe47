// SPDX-License-Identifier: Apache-2.0
// sFlow v5 datagram and sample walking (sflow_version_5.txt: sample_datagram_v5, sample_record,
// flow_sample, flow_sample_expanded, flow_record, sampled_header, sampled_ethernet, sampled_ipv4,
// sampled_ipv6), the agents' sequence numbers, and the mapping of a flow sample onto one
// FlowRecord. Everything is XDR (RFC 4506): big-endian 32-bit words, opaques padded to 4 bytes.
#include "collector/sflow.hpp"

#include <compare>
#include <cstring>
#include <map>
#include <numeric>

#include <sys/socket.h>  // AF_INET, AF_INET6 (the constants only)

#include "collector/ie_ids.hpp"
#include "collector/packet_header.hpp"

namespace flowd::collector {

std::string_view to_string(SflowError e) {
  switch (e) {
    case SflowError::kTooShort:
      return "too_short";
    case SflowError::kBadVersion:
      return "bad_version";
    case SflowError::kBadAgentAddress:
      return "bad_agent_address";
    case SflowError::kBadSampleLength:
      return "bad_sample_length";
    case SflowError::kSampleCount:
      return "sample_count";
    case SflowError::kBadFlowSample:
      return "bad_flow_sample";
    case SflowError::kBadRecordLength:
      return "bad_record_length";
    case SflowError::kRecordCount:
      return "record_count";
    case SflowError::kBadRecord:
      return "bad_record";
    case SflowError::kBadHeaderLength:
      return "bad_header_length";
    case SflowError::kBadPadding:
      return "bad_padding";
    case SflowError::kUnknownSampleFormat:
      return "unknown_sample_format";
    case SflowError::kUnknownRecordFormat:
      return "unknown_record_format";
    case SflowError::kUnknownHeaderProtocol:
      return "unknown_header_protocol";
    case SflowError::kAgentLimit:
      return "agent_limit";
  }
  return "unknown";
}

std::size_t SflowResult::error_count() const {
  return std::accumulate(errors.begin(), errors.end(), std::size_t{0});
}

bool looks_like_sflow(std::span<const std::uint8_t> d) {
  return d.size() >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 5;
}

namespace {

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

constexpr std::size_t pad4(std::size_t n) {
  return (n + 3) & ~std::size_t{3};
}

// A read position in XDR data; callers check has() before reading.
struct Cursor {
  const std::uint8_t* p = nullptr;
  std::size_t n = 0;  // bytes left
  bool has(std::size_t k) const { return n >= k; }
  std::uint32_t u32() {
    const std::uint32_t v = be32(p);
    p += 4;
    n -= 4;
    return v;
  }
  Cursor take(std::size_t k) {  // the next k bytes as their own cursor
    Cursor c{p, k};
    p += k;
    n -= k;
    return c;
  }
};

// data_format (sFlow v5): 20-bit enterprise, 12-bit format.
constexpr std::uint32_t enterprise_of(std::uint32_t f) {
  return f >> 12;
}
constexpr std::uint32_t format_of(std::uint32_t f) {
  return f & 0xFFF;
}

// Sample formats (enterprise 0).
constexpr std::uint32_t kFlowSample = 1;
constexpr std::uint32_t kCountersSample = 2;
constexpr std::uint32_t kFlowSampleExpanded = 3;
constexpr std::uint32_t kCountersSampleExpanded = 4;
// Flow record formats (enterprise 0).
constexpr std::uint32_t kSampledHeader = 1;
constexpr std::uint32_t kSampledEthernet = 2;
constexpr std::uint32_t kSampledIpv4 = 3;
constexpr std::uint32_t kSampledIpv6 = 4;
constexpr std::uint32_t kFirstExtended = 1001;  // extended_switch and the rest

// Fixed parts, in bytes.
constexpr std::size_t kFlowSampleFixed = 8 * 4;           // ... interface output, record count
constexpr std::size_t kFlowSampleExpandedFixed = 11 * 4;  // both interfaces as format + value
constexpr std::size_t kSampledHeaderFixed = 4 * 4;  // protocol, frame_length, stripped, length
constexpr std::size_t kSampledEthernetSize = 4 + 8 + 8 + 4;  // length, 2 MACs padded to 8, type
constexpr std::size_t kSampledIpv4Size = 8 * 4;
constexpr std::size_t kSampledIpv6Size = 6 * 4 + 2 * 16;

// Protocol numbers whose ports sampled_ipv4/_ipv6 carry.
constexpr bool has_ports(std::uint32_t proto) {
  return proto == 6 || proto == 17 || proto == 132 || proto == 136;
}

// What one flow sample contributes to its record, gathered before the record is written.
struct FlowSampleFields {
  std::uint32_t sequence = 0, source_type = 0, source_index = 0;
  std::uint32_t rate = 0, pool = 0, drops = 0;
  std::uint32_t in_format = 0, in_value = 0, out_format = 0, out_value = 0;
  bool has_header = false;
  std::uint32_t header_protocol = 0, frame_length = 0, stripped = 0, header_length = 0;
  bool has_ethernet_length = false;
  std::uint32_t ethernet_length = 0;  // sampled_ethernet length (MAC frame, FCS included)
  PacketHeader pkt;  // from the first sampled_header, else from sampled_ethernet/_ipv4/_ipv6
};

struct DatagramFields {
  int agent_family = 0;  // 0: address type UNKNOWN
  const std::uint8_t* agent = nullptr;
  std::uint32_t sub_agent = 0, sequence = 0, uptime = 0;
};

// ---- field writers --------------------------------------------------------------------------

void put_unsigned(FieldWriter& w, std::uint32_t pen, std::uint16_t id, std::uint64_t v) {
  Field& f = w.next();
  f.pen = pen;
  f.id = id;
  f.value.kind = ValueKind::kUnsigned;
  f.value.u = v;
}

void put_sflow(FieldWriter& w, SflowElement e, std::uint64_t v) {
  put_unsigned(w, kInmonPen, static_cast<std::uint16_t>(e), v);
}

void put_ip(FieldWriter& w, std::uint32_t pen, std::uint16_t id, int family,
            const std::uint8_t* bytes) {
  Field& f = w.next();
  f.pen = pen;
  f.id = id;
  if (family == AF_INET) {
    f.value.kind = ValueKind::kIpv4;
    f.value.ip = IpAddress::v4(be32(bytes));
  } else {
    f.value.kind = ValueKind::kIpv6;
    f.value.ip.family = AF_INET6;
    std::memcpy(f.value.ip.bytes.data(), bytes, 16);
  }
}

void put_mac(FieldWriter& w, std::uint16_t id, const std::array<std::uint8_t, 6>& mac) {
  Field& f = w.next();
  f.pen = 0;
  f.id = id;
  f.value.kind = ValueKind::kMac;
  f.value.bytes.assign(reinterpret_cast<const char*>(mac.data()), mac.size());
}

// An interface of a flow sample: format 0 is an ifIndex (0x3FFFFFFF in the compact form and
// 0xFFFFFFFF in the expanded one mean the agent itself, kept as exported); other formats (1 packet
// discarded with a reason, 2 sent to several interfaces) are not interfaces and go to InMon
// elements.
void put_interface(FieldWriter& w, std::uint16_t iana_id, SflowElement format_id,
                   SflowElement value_id, std::uint32_t format, std::uint32_t value) {
  if (format == 0) {
    put_unsigned(w, 0, iana_id, value);
  } else {
    put_sflow(w, format_id, format);
    put_sflow(w, value_id, value);
  }
}

using namespace ie;  // the IANA element ids (ie_ids.hpp)

// Notes that the field just written is the key slot `s` (FlowRecord::keys).
void mark(KeyFields& k, KeyFields::Slot s, const FieldWriter& w) {
  k.at[s] = static_cast<std::int8_t>(w.size() - 1);  // at most ~35 fields per sample
}

void write_record(const DatagramFields& d, const FlowSampleFields& s, bool apply_sampling,
                  FieldWriter& w, KeyFields& k) {
  // Every element is written at most once, in an order that depends only on what the sample has.
  k = KeyFields{};
  k.known = true;
  if (d.agent_family != 0)
    put_ip(w, kInmonPen, static_cast<std::uint16_t>(SflowElement::kAgentAddress), d.agent_family,
           d.agent);
  put_sflow(w, SflowElement::kSubAgentId, d.sub_agent);
  put_sflow(w, SflowElement::kDatagramSequenceNumber, d.sequence);
  put_sflow(w, SflowElement::kUptime, d.uptime);
  put_sflow(w, SflowElement::kSampleSequenceNumber, s.sequence);
  put_sflow(w, SflowElement::kSourceIdType, s.source_type);
  put_sflow(w, SflowElement::kSourceIdIndex, s.source_index);
  put_unsigned(w, 0, kSamplingInterval, s.rate);
  put_sflow(w, SflowElement::kSamplePool, s.pool);
  put_sflow(w, SflowElement::kDrops, s.drops);
  put_interface(w, kIngressInterface, SflowElement::kInputFormat, SflowElement::kInputValue,
                s.in_format, s.in_value);
  put_interface(w, kEgressInterface, SflowElement::kOutputFormat, SflowElement::kOutputValue,
                s.out_format, s.out_value);

  // One sampled packet; its size is the frame's when a header or Ethernet record gave it, else the
  // IP packet's. Unscaled unless apply_sampling (then an estimate: rate packets of this size).
  const PacketHeader& p = s.pkt;
  std::uint64_t octets = 0;
  bool has_octets = true;
  if (s.has_header)
    octets = s.frame_length;
  else if (s.has_ethernet_length)
    octets = s.ethernet_length;
  else if (p.ip_version != 0)
    octets = p.ip_total_length;
  else
    has_octets = false;
  const std::uint64_t scale = apply_sampling && s.rate > 1 ? s.rate : 1;
  put_unsigned(w, 0, kPacketDeltaCount, scale);
  mark(k, KeyFields::kPacketDelta, w);
  if (has_octets) {
    put_unsigned(w, 0, kOctetDeltaCount, octets * scale);
    mark(k, KeyFields::kOctetDelta, w);
  }
  if (s.has_header) {
    put_sflow(w, SflowElement::kHeaderProtocol, s.header_protocol);
    put_unsigned(w, 0, kDataLinkFrameSize, s.frame_length);
    put_sflow(w, SflowElement::kStripped, s.stripped);
    put_sflow(w, SflowElement::kHeaderLength, s.header_length);
  }

  if (p.has_ethernet) {
    put_mac(w, kSourceMacAddress, p.src_mac);
    put_mac(w, kDestinationMacAddress, p.dst_mac);
    if (p.vlan_count >= 1) put_unsigned(w, 0, kVlanId, p.vlan_id[0]);
    if (p.vlan_count >= 2) put_unsigned(w, 0, kDot1qCustomerVlanId, p.vlan_id[1]);
    put_unsigned(w, 0, kEthernetType, p.ethertype);
  }
  if (p.ip_version == 4) {
    put_ip(w, 0, kSourceIPv4Address, AF_INET, p.src_ip.data());
    mark(k, KeyFields::kSrcV4, w);
    put_ip(w, 0, kDestinationIPv4Address, AF_INET, p.dst_ip.data());
    mark(k, KeyFields::kDstV4, w);
  } else if (p.ip_version == 6) {
    put_ip(w, 0, kSourceIPv6Address, AF_INET6, p.src_ip.data());
    mark(k, KeyFields::kSrcV6, w);
    put_ip(w, 0, kDestinationIPv6Address, AF_INET6, p.dst_ip.data());
    mark(k, KeyFields::kDstV6, w);
    put_unsigned(w, 0, kFlowLabelIPv6, p.flow_label);
    mark(k, KeyFields::kFlowLabel, w);
  }
  if (p.ip_version != 0) {
    put_unsigned(w, 0, kIpClassOfService, p.tos);
    put_unsigned(w, 0, kIpTotalLength, p.ip_total_length);
  }
  if (p.has_protocol) {
    put_unsigned(w, 0, kProtocolIdentifier, p.protocol);
    mark(k, KeyFields::kProtocol, w);
  }
  if (p.has_ports) {
    put_unsigned(w, 0, kSourceTransportPort, p.src_port);
    mark(k, KeyFields::kSrcPort, w);
    put_unsigned(w, 0, kDestinationTransportPort, p.dst_port);
    mark(k, KeyFields::kDstPort, w);
  }
  if (p.has_tcp_flags) put_unsigned(w, 0, kTcpControlBits, p.tcp_flags);
  if (p.has_icmp)
    put_unsigned(w, 0, p.ip_version == 4 ? kIcmpTypeCodeIPv4 : kIcmpTypeCodeIPv6, p.icmp_type_code);
}

// ---- flow records ---------------------------------------------------------------------------

using Errors = std::array<std::uint32_t, kSflowErrorCount>;

void count(Errors& e, SflowError r) {
  ++e[static_cast<std::size_t>(r)];
}

// sampled_header: header_protocol, frame_length, stripped, opaque header<>.
void read_sampled_header(Cursor r, FlowSampleFields& s, Errors& errors) {
  if (!r.has(kSampledHeaderFixed)) return count(errors, SflowError::kBadRecord);
  const std::uint32_t protocol = r.u32();
  const std::uint32_t frame_length = r.u32();
  const std::uint32_t stripped = r.u32();
  const std::uint32_t length = r.u32();
  if (length > r.n) return count(errors, SflowError::kBadHeaderLength);
  // The record is exactly the opaque and its padding; anything else means the agent got XDR wrong.
  if (pad4(length) != r.n) count(errors, SflowError::kBadPadding);
  if (s.has_header) return;  // a second sampled_header in one sample: the first one describes it
  s.has_header = true;
  s.header_protocol = protocol;
  s.frame_length = frame_length;
  s.stripped = stripped;
  s.header_length = length;
  const PacketHeader parsed = parse_packet_header(protocol, std::span(r.p, length));
  if (parsed.status == HeaderStatus::kUnsupported) {
    // Kept (frame length, header protocol); a sampled_ipv4/_ipv6/_ethernet may still describe it.
    count(errors, SflowError::kUnknownHeaderProtocol);
    return;
  }
  s.pkt = parsed;  // the header is the most complete description, whatever came before it
}

// sampled_ethernet: length, src_mac, dst_mac (opaque[6], padded to 8), type.
void read_sampled_ethernet(Cursor r, FlowSampleFields& s, Errors& errors) {
  if (!r.has(kSampledEthernetSize)) return count(errors, SflowError::kBadRecord);
  const std::uint32_t length = r.u32();
  if (!s.has_ethernet_length) {
    s.has_ethernet_length = true;
    s.ethernet_length = length;
  }
  if (s.pkt.has_ethernet) return;
  s.pkt.has_ethernet = true;
  std::memcpy(s.pkt.src_mac.data(), r.p, 6);
  std::memcpy(s.pkt.dst_mac.data(), r.p + 8, 6);
  r.take(16);
  s.pkt.ethertype = static_cast<std::uint16_t>(r.u32());
}

// sampled_ipv4 / sampled_ipv6: length, protocol, src_ip, dst_ip, src_port, dst_port, tcp_flags,
// tos / priority. Used only when no sampled_header gave the IP header.
void read_sampled_ip(Cursor r, bool v6, FlowSampleFields& s, Errors& errors) {
  if (!r.has(v6 ? kSampledIpv6Size : kSampledIpv4Size))
    return count(errors, SflowError::kBadRecord);
  if (s.pkt.ip_version != 0) return;
  PacketHeader& p = s.pkt;
  const std::size_t alen = v6 ? 16 : 4;
  p.ip_version = v6 ? 6 : 4;
  p.ip_total_length = r.u32();
  const std::uint32_t protocol = r.u32();
  p.has_protocol = true;
  p.protocol = static_cast<std::uint8_t>(protocol);
  std::memcpy(p.src_ip.data(), r.p, alen);
  std::memcpy(p.dst_ip.data(), r.p + alen, alen);
  r.take(2 * alen);
  const std::uint32_t sport = r.u32();
  const std::uint32_t dport = r.u32();
  const std::uint32_t flags = r.u32();
  p.tos = static_cast<std::uint8_t>(r.u32());
  if (has_ports(protocol)) {
    p.has_ports = true;
    p.src_port = static_cast<std::uint16_t>(sport);
    p.dst_port = static_cast<std::uint16_t>(dport);
  }
  if (protocol == 6) {
    p.has_tcp_flags = true;
    p.tcp_flags = static_cast<std::uint16_t>(flags & 0x0FFF);
  }
}

// The flow_record list of one flow sample (`r` starts at the record count).
void read_flow_records(Cursor r, FlowSampleFields& s, SflowResult& result) {
  Errors& errors = result.errors;
  std::uint32_t n = r.u32();
  for (; n > 0; --n) {
    if (r.n == 0) return count(errors, SflowError::kRecordCount);
    if (!r.has(8)) return count(errors, SflowError::kBadRecordLength);
    const std::uint32_t fmt = r.u32();
    const std::uint32_t len = r.u32();
    if (len > r.n) return count(errors, SflowError::kBadRecordLength);
    if (len % 4 != 0) count(errors, SflowError::kBadPadding);
    Cursor body = r.take(len);
    if (enterprise_of(fmt) != 0) {
      count(errors, SflowError::kUnknownRecordFormat);
      continue;
    }
    switch (format_of(fmt)) {
      case kSampledHeader:
        read_sampled_header(body, s, errors);
        break;
      case kSampledEthernet:
        read_sampled_ethernet(body, s, errors);
        break;
      case kSampledIpv4:
        read_sampled_ip(body, false, s, errors);
        break;
      case kSampledIpv6:
        read_sampled_ip(body, true, s, errors);
        break;
      default:
        if (format_of(fmt) >= kFirstExtended)
          ++result.extended_records;
        else
          count(errors, SflowError::kUnknownRecordFormat);
        break;
    }
  }
  if (r.n != 0) count(errors, SflowError::kRecordCount);
}

// ---- agents ---------------------------------------------------------------------------------

struct AgentKey {
  int family = 0;
  std::array<std::uint8_t, 16> addr{};
  std::uint32_t sub_agent = 0;
  auto operator<=>(const AgentKey&) const = default;
};

struct AgentState {
  TimePoint seen{};
  std::uint32_t expected = 0;  // next datagram sequence_number
};

// A datagram at most this far behind the expected sequence number arrived late (reordered on the
// way); farther behind, the agent restarted (sFlow v5: sequence numbers restart with the agent).
constexpr std::uint32_t kReorderWindow = 8;

}  // namespace

struct SflowDecoder::State {
  SflowLimits limits;
  std::map<AgentKey, AgentState> agents;
  TimePoint last_sweep{};

  void check_sequence(const AgentKey& key, std::uint32_t seq, TimePoint now, SflowResult& result);
  void decode_flow_sample(Cursor r, bool expanded, const DatagramFields& d, const Exporter& from,
                          TimePoint now, RecordBatch& out, SflowResult& result);
};

void SflowDecoder::State::check_sequence(const AgentKey& key, std::uint32_t seq, TimePoint now,
                                         SflowResult& result) {
  auto it = agents.find(key);
  if (it != agents.end() && now - it->second.seen > limits.agent_timeout) {
    agents.erase(it);  // silent too long: what it sends now starts a new session
    it = agents.end();
  }
  if (it == agents.end()) {
    if (agents.size() >= limits.max_agents && now - last_sweep >= std::chrono::seconds{1}) {
      last_sweep =
          now;  // at most one sweep a second: a flood of new agents cannot make each datagram O(n)
      std::erase_if(agents,
                    [&](const auto& kv) { return now - kv.second.seen > limits.agent_timeout; });
    }
    if (agents.size() >= limits.max_agents) return count(result.errors, SflowError::kAgentLimit);
    agents.emplace(key, AgentState{now, seq + 1});
    return;
  }
  AgentState& a = it->second;
  if (now > a.seen) a.seen = now;
  const std::uint32_t ahead = seq - a.expected;  // mod 2^32
  if (ahead == 0) {
    a.expected = seq + 1;
  } else if (ahead < 0x80000000u) {  // a forward gap: datagrams lost
    result.sequence_lost += ahead;
    a.expected = seq + 1;
  } else if (a.expected - seq > kReorderWindow) {
    result.agent_restarted = true;
    a.expected = seq + 1;
  }
  // else: a late datagram, already counted as lost when its successor came; expected stays.
}

void SflowDecoder::State::decode_flow_sample(Cursor r, bool expanded, const DatagramFields& d,
                                             const Exporter& from, TimePoint now, RecordBatch& out,
                                             SflowResult& result) {
  if (!r.has(expanded ? kFlowSampleExpandedFixed : kFlowSampleFixed))
    return count(result.errors, SflowError::kBadFlowSample);
  FlowSampleFields s;
  s.sequence = r.u32();
  if (expanded) {
    s.source_type = r.u32();
    s.source_index = r.u32();
  } else {
    const std::uint32_t source = r.u32();  // sflow_data_source: type in the top byte, index below
    s.source_type = source >> 24;
    s.source_index = source & 0xFFFFFF;
  }
  s.rate = r.u32();
  s.pool = r.u32();
  s.drops = r.u32();
  if (expanded) {
    s.in_format = r.u32();
    s.in_value = r.u32();
    s.out_format = r.u32();
    s.out_value = r.u32();
  } else {
    const std::uint32_t in = r.u32();  // interface: format in the top 2 bits, value below
    const std::uint32_t out_if = r.u32();
    s.in_format = in >> 30;
    s.in_value = in & 0x3FFFFFFF;
    s.out_format = out_if >> 30;
    s.out_value = out_if & 0x3FFFFFFF;
  }
  read_flow_records(r, s, result);

  FlowRecord& rec = out.next();
  rec.exporter = from;
  rec.received = now;
  rec.protocol = ExportProtocol::kSflow;
  rec.version = 5;
  rec.domain = d.sub_agent;
  rec.template_id = 0;
  rec.options = false;
  rec.sampling_rate = s.rate;
  rec.counters_scaled = limits.apply_sampling && s.rate > 1;
  FieldWriter w(rec);
  write_record(d, s, limits.apply_sampling, w, rec.keys);
  w.finish();
  ++result.records;
}

SflowDecoder::SflowDecoder(SflowLimits limits) : state_(std::make_unique<State>()) {
  state_->limits = limits;
}
SflowDecoder::~SflowDecoder() = default;
SflowDecoder::SflowDecoder(SflowDecoder&&) noexcept = default;
SflowDecoder& SflowDecoder::operator=(SflowDecoder&&) noexcept = default;

SflowResult SflowDecoder::decode(std::span<const std::uint8_t> datagram, const Exporter& from,
                                 TimePoint now, RecordBatch& out) {
  SflowResult result;
  Errors& errors = result.errors;
  Cursor r{datagram.data(), datagram.size()};
  if (!r.has(8)) {
    count(errors, r.has(4) && be32(r.p) != 5 ? SflowError::kBadVersion : SflowError::kTooShort);
    return result;
  }
  if (r.u32() != 5) {
    count(errors, SflowError::kBadVersion);
    return result;
  }
  // address: type, then 0, 4 or 16 bytes.
  DatagramFields d;
  const std::uint32_t address_type = r.u32();
  std::size_t address_length = 0;
  if (address_type == 1) {
    d.agent_family = AF_INET;
    address_length = 4;
  } else if (address_type == 2) {
    d.agent_family = AF_INET6;
    address_length = 16;
  } else if (address_type != 0) {
    count(errors, SflowError::kBadAgentAddress);
    return result;
  }
  if (!r.has(address_length + 16)) {
    count(errors, SflowError::kTooShort);
    return result;
  }
  d.agent = r.p;
  r.take(address_length);
  d.sub_agent = r.u32();
  d.sequence = r.u32();
  d.uptime = r.u32();
  std::uint32_t samples = r.u32();
  result.agent_sequence = d.sequence;

  // Sequence numbers belong to an agent's sub-agent; an agent that does not know its own address
  // is known by the address it sends from.
  AgentKey key;
  key.sub_agent = d.sub_agent;
  if (d.agent_family != 0) {
    key.family = d.agent_family;
    std::memcpy(key.addr.data(), d.agent, address_length);
  } else {
    key.family = from.address.family;
    key.addr = from.address.bytes;
  }
  state_->check_sequence(key, d.sequence, now, result);

  // sample_record: data_format, opaque sample_data<>.
  for (; samples > 0; --samples) {
    if (r.n == 0) {
      count(errors, SflowError::kSampleCount);
      return result;
    }
    if (!r.has(8)) {
      count(errors, SflowError::kBadSampleLength);
      return result;
    }
    const std::uint32_t fmt = r.u32();
    const std::uint32_t len = r.u32();
    if (len > r.n) {  // where the next sample starts is unknown: stop, keep what came before
      count(errors, SflowError::kBadSampleLength);
      return result;
    }
    if (len % 4 != 0) count(errors, SflowError::kBadPadding);
    Cursor body = r.take(len);
    if (enterprise_of(fmt) != 0) {
      count(errors, SflowError::kUnknownSampleFormat);
      continue;
    }
    switch (format_of(fmt)) {
      case kFlowSample:
      case kFlowSampleExpanded:
        state_->decode_flow_sample(body, format_of(fmt) == kFlowSampleExpanded, d, from, now, out,
                                   result);
        break;
      case kCountersSample:
      case kCountersSampleExpanded:
        ++result.counter_samples;
        break;
      default:
        count(errors, SflowError::kUnknownSampleFormat);
        break;
    }
  }
  if (r.n != 0) count(errors, SflowError::kSampleCount);
  return result;
}

std::size_t SflowDecoder::expire(TimePoint now) {
  State& s = *state_;
  return std::erase_if(
      s.agents, [&](const auto& kv) { return now - kv.second.seen > s.limits.agent_timeout; });
}

std::size_t SflowDecoder::agent_count() const {
  return state_->agents.size();
}

}  // namespace flowd::collector
