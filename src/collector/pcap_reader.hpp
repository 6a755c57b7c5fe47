// SPDX-License-Identifier: Apache-2.0
// Reads export payloads out of a capture (pcap or pcapng, through libpcap): UDP datagrams as they
// are, and TCP streams (IPFIX over TCP) re-split into messages by the IPFIX length field.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "collector/flow_record.hpp"

namespace flowd::collector {

struct CapturedPayload {
  Exporter exporter;
  TimePoint time{};
  bool tcp = false;
  std::vector<std::uint8_t> bytes;
};

// Calls `on_payload` for each payload in capture order. Throws std::runtime_error if the file
// cannot be read; frames that are not IPv4/IPv6 UDP/TCP are skipped and counted in `skipped`.
void read_capture(const std::string& path,
                  const std::function<void(const CapturedPayload&)>& on_payload,
                  std::size_t& skipped);

}  // namespace flowd::collector
