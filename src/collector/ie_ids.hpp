// SPDX-License-Identifier: Apache-2.0
// The IANA IPFIX Information Element ids (enterprise 0) that flowd's code reads or writes by
// number: one table, so that no id is a bare number in two places. Names and numbers are IANA's
// "IPFIX Information Elements" registry (https://www.iana.org/assignments/ipfix/); NetFlow v9 field
// types 1..127 are the same numbers (RFC 3954 §8). ie_names.cpp holds the whole registry for
// naming and typing every element; these are only the ones the decoders and the tracker act on.
#pragma once

#include <cstdint>

namespace flowd::collector::ie {

inline constexpr std::uint16_t kOctetDeltaCount = 1;
inline constexpr std::uint16_t kPacketDeltaCount = 2;
inline constexpr std::uint16_t kProtocolIdentifier = 4;
inline constexpr std::uint16_t kIpClassOfService = 5;
inline constexpr std::uint16_t kTcpControlBits = 6;
inline constexpr std::uint16_t kSourceTransportPort = 7;
inline constexpr std::uint16_t kSourceIPv4Address = 8;
inline constexpr std::uint16_t kSourceIPv4PrefixLength = 9;
inline constexpr std::uint16_t kIngressInterface = 10;
inline constexpr std::uint16_t kDestinationTransportPort = 11;
inline constexpr std::uint16_t kDestinationIPv4Address = 12;
inline constexpr std::uint16_t kDestinationIPv4PrefixLength = 13;
inline constexpr std::uint16_t kEgressInterface = 14;
inline constexpr std::uint16_t kIpNextHopIPv4Address = 15;
inline constexpr std::uint16_t kBgpSourceAsNumber = 16;
inline constexpr std::uint16_t kBgpDestinationAsNumber = 17;
inline constexpr std::uint16_t kFlowEndSysUpTime = 21;
inline constexpr std::uint16_t kFlowStartSysUpTime = 22;
inline constexpr std::uint16_t kSourceIPv6Address = 27;
inline constexpr std::uint16_t kDestinationIPv6Address = 28;
inline constexpr std::uint16_t kFlowLabelIPv6 = 31;
inline constexpr std::uint16_t kIcmpTypeCodeIPv4 = 32;
inline constexpr std::uint16_t kSamplingInterval = 34;
inline constexpr std::uint16_t kSamplingAlgorithm = 35;
inline constexpr std::uint16_t kSamplerId = 48;
inline constexpr std::uint16_t kSamplerRandomInterval = 50;
inline constexpr std::uint16_t kSourceMacAddress = 56;
inline constexpr std::uint16_t kVlanId = 58;
inline constexpr std::uint16_t kDestinationMacAddress = 80;
inline constexpr std::uint16_t kOctetTotalCount = 85;
inline constexpr std::uint16_t kPacketTotalCount = 86;
inline constexpr std::uint16_t kFlowEndReason = 136;
inline constexpr std::uint16_t kIcmpTypeCodeIPv6 = 139;
inline constexpr std::uint16_t kLineCardId = 141;
inline constexpr std::uint16_t kExportingProcessId = 144;
inline constexpr std::uint16_t kTemplateId = 145;
inline constexpr std::uint16_t kFlowStartMilliseconds = 152;
inline constexpr std::uint16_t kFlowEndMilliseconds = 153;
inline constexpr std::uint16_t kFlowStartMicroseconds = 154;
inline constexpr std::uint16_t kFlowEndMicroseconds = 155;
inline constexpr std::uint16_t kFlowStartDeltaMicroseconds = 158;
inline constexpr std::uint16_t kFlowEndDeltaMicroseconds = 159;
inline constexpr std::uint16_t kSystemInitTimeMilliseconds = 160;
inline constexpr std::uint16_t kIpTotalLength = 224;
inline constexpr std::uint16_t kDot1qCustomerVlanId = 245;
inline constexpr std::uint16_t kEthernetType = 256;
inline constexpr std::uint16_t kSelectorId = 302;
inline constexpr std::uint16_t kSamplingPacketInterval = 305;
inline constexpr std::uint16_t kSamplingPacketSpace = 306;
inline constexpr std::uint16_t kDataLinkFrameSize = 312;

}  // namespace flowd::collector::ie
