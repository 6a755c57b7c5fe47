// SPDX-License-Identifier: Apache-2.0
#include "firefly/firefly_message.hpp"

#include "flowd/rfc3339.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

namespace flowd::firefly {
namespace {

// JSON string escaping for the few free-text fields (hostname is in the header, not the JSON).
void append_json_string(fmt::memory_buffer& out, std::string_view s) {
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
void append_syslog_header(fmt::memory_buffer& out, std::string_view now,
                          std::string_view hostname) {
  fmt::format_to(std::back_inserter(out), "{} {} {} {} - {} - ", kSyslogPriVersion, now, hostname,
                 kSyslogAppName, kSyslogMsgId);
}

}  // namespace

std::string build_firefly(const FlowID& flow, const FireflyFields& f) {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  std::string now = format_time_iso(f.now);
  if (f.syslog_header) append_syslog_header(out, now, f.hostname);
  fmt::format_to(
      it,
      R"({{"version": 1, "flow-lifecycle": {{"state": "{}", "current-time": "{}", "start-time": "{}")",
      to_string(flow.state), now, format_time_iso(f.start_time));
  if (flow.state == FlowState::kEnd)
    fmt::format_to(it, R"(, "end-time": "{}")", format_time_iso(flow.end_time.value_or(f.now)));
  fmt::format_to(
      it,
      R"(}}, "flow-id": {{"afi": "{}", "src-ip": "{}", "dst-ip": "{}", "protocol": "{}", )"
      R"("src-port": {}, "dst-port": {}}}, "context": {{"experiment-id": {}, "activity-id": {}, )"
      R"("application": )",
      flow.family() == AF_INET6 ? "ipv6" : "ipv4",
      f.src_override.empty() ? flow.src.to_string() : f.src_override,
      f.dst_override.empty() ? flow.dst.to_string() : f.dst_override, to_string(flow.protocol),
      flow.src_port, flow.dst_port, flow.experiment, flow.activity);
  append_json_string(out, f.application);
  fmt::format_to(it, "}}");
  if (!f.netlink.empty()) fmt::format_to(it, R"(, "netlink": {})", f.netlink);
  fmt::format_to(it, "}}");
  return fmt::to_string(out);
}

std::string build_relayed_firefly(std::string_view json, const FireflyFields& f) {
  fmt::memory_buffer out;
  if (f.syslog_header) append_syslog_header(out, format_time_iso(f.now), f.hostname);
  out.append(json.data(), json.data() + json.size());
  return fmt::to_string(out);
}

}  // namespace flowd::firefly
