// SPDX-License-Identifier: Apache-2.0
// The firefly datagram: an RFC 5424 syslog header and the Scitags JSON, byte for byte as the
// Python original writes it (key order, ", " and ": " separators), so existing collectors parse it.
#pragma once

#include <string>

#include "flowd/flow_id.hpp"

namespace flowd::udp_firefly {

struct FireflyFields {
  std::string hostname;     // syslog HOSTNAME
  std::string application;  // context.application
  bool syslog_header = true;
  TimePoint now;
  TimePoint start_time;        // always present: the schema requires it
  std::string src_override;    // replaces flow-id.src-ip when non-empty
  std::string dst_override;    // replaces flow-id.dst-ip when non-empty (public-IP discovery)
  std::string netlink;         // a JSON object added as "netlink" when non-empty (tcp_enrichment.hpp)
};

std::string build_firefly(const FlowID& flow, const FireflyFields& f);
// A relayed firefly: our syslog header (if f.syslog_header) and the JSON exactly as it was received.
std::string build_relayed_firefly(std::string_view json, const FireflyFields& f);

}  // namespace flowd::udp_firefly
