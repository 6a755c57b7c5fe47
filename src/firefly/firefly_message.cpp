// SPDX-License-Identifier: Apache-2.0
#include "firefly/firefly_message.hpp"

#include "flowd/rfc3339.hpp"

#include <fmt/format.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <iterator>

namespace flowd::firefly {
namespace {

// JSON string escaping for the few free-text fields (hostname is in the header, not the JSON).
void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

// The one place the syslog header is written (RFC 5424 §6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP
// APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP), "-" for the absent PROCID and SD.
void append_syslog_header(std::string& out, std::string_view now, std::string_view hostname) {
  fmt::format_to(std::back_inserter(out), "{} {} {} {} - {} - ", kSyslogPriVersion, now, hostname,
                 kSyslogAppName, kSyslogMsgId);
}

// An address as the firefly writes it: `override` when set, else the address in text. Into a
// stack buffer: no allocation per firefly.
std::string_view address_text(const IpAddress& a, const std::string& override, char (&buf)[64]) {
  if (!override.empty()) return override;
  if (!a.is_v4() && !a.is_v6()) return {};  // as IpAddress::to_string
  if (!::inet_ntop(a.family, a.bytes.data(), buf, sizeof buf)) return {};
  return buf;
}

}  // namespace

void append_firefly(std::string& out, const FlowID& flow, const FireflyFields& f) {
  auto it = std::back_inserter(out);
  const std::string now = format_time_iso(f.now);
  if (f.syslog_header) append_syslog_header(out, now, f.hostname);
  fmt::format_to(
      it,
      R"({{"version": 1, "flow-lifecycle": {{"state": "{}", "current-time": "{}", "start-time": "{}")",
      to_string(flow.state), now, format_time_iso(f.start_time));
  if (flow.state == FlowState::kEnd)
    fmt::format_to(it, R"(, "end-time": "{}")", format_time_iso(flow.end_time.value_or(f.now)));
  char src[64], dst[64];
  fmt::format_to(
      it,
      R"(}}, "flow-id": {{"afi": "{}", "src-ip": "{}", "dst-ip": "{}", "protocol": "{}", )"
      R"("src-port": {}, "dst-port": {}}}, "context": {{"experiment-id": {}, "activity-id": {}, )"
      R"("application": )",
      flow.family() == AF_INET6 ? "ipv6" : "ipv4", address_text(flow.src, f.src_override, src),
      address_text(flow.dst, f.dst_override, dst), to_string(flow.protocol), flow.src_port,
      flow.dst_port, flow.experiment, flow.activity);
  append_json_string(out, f.application);
  out.push_back('}');
  if (!f.netlink.empty()) fmt::format_to(it, R"(, "netlink": {})", f.netlink);
  out.push_back('}');
}

std::string build_firefly(const FlowID& flow, const FireflyFields& f) {
  std::string out;
  append_firefly(out, flow, f);
  return out;
}

void append_relayed_firefly(std::string& out, std::string_view json, const FireflyFields& f) {
  if (f.syslog_header) append_syslog_header(out, format_time_iso(f.now), f.hostname);
  out.append(json);
}

std::string build_relayed_firefly(std::string_view json, const FireflyFields& f) {
  std::string out;
  append_relayed_firefly(out, json, f);
  return out;
}

}  // namespace flowd::firefly
