// SPDX-License-Identifier: Apache-2.0
// A hand-made IPFIX message (RFC 7011): one template and one data set of TCP/UDP flows with the
// IPv6 flow label (element 31) and optionally the octet/packet deltas, as a router exporting
// Scitags-marked traffic sends it. All flows of one message are of one address family.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flowd::test {

struct ExportedFlow {
  std::string src, dst;  // IPv4 or IPv6 addresses
  std::uint16_t src_port = 0, dst_port = 0;
  std::uint8_t protocol = 17;  // 6 TCP, 17 UDP
  std::uint32_t flow_label = 0;
  // octetDeltaCount / packetDeltaCount (1/2): exported only when some flow of the message has them.
  std::uint64_t octets = 0, packets = 0;
};

// Which sets a message carries: exporters send the template with the data, or on its own and then
// data alone until the next refresh.
enum class IpfixSets { kTemplateAndData, kTemplateOnly, kDataOnly };

inline std::string ipfix_export(const std::vector<ExportedFlow>& flows, std::uint32_t sequence = 0,
                                IpfixSets sets = IpfixSets::kTemplateAndData) {
  auto put16 = [](std::string& s, std::uint16_t v) {
    s.push_back(static_cast<char>(v >> 8));
    s.push_back(static_cast<char>(v & 0xff));
  };
  auto put32 = [&](std::string& s, std::uint32_t v) {
    put16(s, static_cast<std::uint16_t>(v >> 16));
    put16(s, static_cast<std::uint16_t>(v & 0xffff));
  };
  const bool v6 = !flows.empty() && flows.front().src.find(':') != std::string::npos;
  const std::uint16_t addr_len = v6 ? 16 : 4;
  // sourceIPv{4,6}Address, destinationIPv{4,6}Address, ports, protocolIdentifier, flowLabelIPv6.
  std::vector<std::pair<std::uint16_t, std::uint16_t>> fields = {
      {static_cast<std::uint16_t>(v6 ? 27 : 8), addr_len},
      {static_cast<std::uint16_t>(v6 ? 28 : 12), addr_len},
      {7, 2},
      {11, 2},
      {4, 1},
      {31, 4}};
  bool counters = false;
  for (const auto& f : flows) counters = counters || f.octets != 0 || f.packets != 0;
  if (counters) {
    fields.push_back({1, 8});
    fields.push_back({2, 8});
  }
  const std::uint16_t template_id = 256;
  std::string tmpl;
  put16(tmpl, 2);  // template set
  put16(tmpl, static_cast<std::uint16_t>(4 + 4 + 4 * fields.size()));
  put16(tmpl, template_id);
  put16(tmpl, static_cast<std::uint16_t>(fields.size()));
  for (auto [id, len] : fields) {
    put16(tmpl, id);
    put16(tmpl, len);
  }
  std::string records;
  for (const auto& f : flows) {
    unsigned char a[16] = {}, b[16] = {};
    inet_pton(v6 ? AF_INET6 : AF_INET, f.src.c_str(), a);
    inet_pton(v6 ? AF_INET6 : AF_INET, f.dst.c_str(), b);
    records.append(reinterpret_cast<const char*>(a), addr_len);
    records.append(reinterpret_cast<const char*>(b), addr_len);
    put16(records, f.src_port);
    put16(records, f.dst_port);
    records.push_back(static_cast<char>(f.protocol));
    put32(records, f.flow_label);
    if (counters) {
      for (std::uint64_t v : {f.octets, f.packets}) {
        put32(records, static_cast<std::uint32_t>(v >> 32));
        put32(records, static_cast<std::uint32_t>(v & 0xffffffff));
      }
    }
  }
  std::string data;
  put16(data, template_id);
  put16(data, static_cast<std::uint16_t>(4 + records.size()));
  data += records;
  if (sets == IpfixSets::kTemplateOnly) data.clear();
  if (sets == IpfixSets::kDataOnly) tmpl.clear();
  std::string msg;
  put16(msg, 10);
  put16(msg, static_cast<std::uint16_t>(16 + tmpl.size() + data.size()));
  put32(msg, 1700000000);  // export time
  put32(msg, sequence);
  put32(msg, 1);  // observation domain
  return msg + tmpl + data;
}

}  // namespace flowd::test
