// SPDX-License-Identifier: Apache-2.0
#include "firefly/firefly_message.hpp"

#include "flowd/rfc3339.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <sys/socket.h>

#include <charconv>
#include <iterator>

#include "common/json_text.hpp"

namespace flowd::firefly {
namespace {

// The one place the syslog header is written (RFC 5424 §6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP
// APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP), "-" for the absent PROCID and SD.
void append_syslog_header(std::string& out, std::string_view now, std::string_view hostname) {
  for (std::string_view part :
       {kSyslogPriVersion, std::string_view(" "), now, std::string_view(" "), hostname,
        std::string_view(" "), kSyslogAppName, std::string_view(" - "), kSyslogMsgId,
        std::string_view(" - ")})
    out.append(part);
}

// An address as the firefly writes it: `override` when set, else the address in text, written
// without inet_ntop for IPv4 (glibc formats it with sprintf, a sizeable share of a firefly's cost).
void append_address(std::string& out, const IpAddress& a, const std::string& override) {
  if (!override.empty()) {
    out.append(override);
  } else if (a.is_v4()) {
    // Digit by digit into the string (a to_chars loop into a stack buffer drew a false
    // -Wstringop-overflow from GCC 12 at -O3).
    for (std::size_t i = 0; i < 4; ++i) {
      if (i) out.push_back('.');
      const unsigned b = a.bytes[i];
      if (b >= 100) out.push_back(static_cast<char>('0' + b / 100));
      if (b >= 10) out.push_back(static_cast<char>('0' + b / 10 % 10));
      out.push_back(static_cast<char>('0' + b % 10));
    }
  } else if (a.is_v6()) {
    char buf[INET6_ADDRSTRLEN];
    if (::inet_ntop(AF_INET6, a.bytes.data(), buf, sizeof buf)) out.append(buf);
  }  // another family: "" (as IpAddress::to_string)
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void append_time(std::string& out, TimePoint t) {
  char buf[kFormattedTimeMax];
  out.append(buf, format_time_to(buf, t, TimePrecision::kMicroseconds));
}

}  // namespace

// Written piece by piece rather than through one format string: fireflies are written at the
// rate flows start and end, and interpreting the format string was most of the cost.
void append_firefly(std::string& out, const FlowID& flow, const FireflyFields& f) {
  char now_buf[kFormattedTimeMax];
  const std::string_view now(now_buf, format_time_to(now_buf, f.now, TimePrecision::kMicroseconds));
  if (f.syslog_header) append_syslog_header(out, now, f.hostname);
  out.append(R"({"version": 1, "flow-lifecycle": {"state": ")");
  out.append(to_string(flow.state));
  out.append(R"(", "current-time": ")");
  out.append(now);
  out.append(R"(", "start-time": ")");
  append_time(out, f.start_time);
  out.push_back('"');
  if (flow.state == FlowState::kEnd) {
    out.append(R"(, "end-time": ")");
    append_time(out, flow.end_time.value_or(f.now));
    out.push_back('"');
  }
  out.append(R"(}, "flow-id": {"afi": ")");
  out.append(flow.family() == AF_INET6 ? "ipv6" : "ipv4");
  out.append(R"(", "src-ip": ")");
  append_address(out, flow.src, f.src_override);
  out.append(R"(", "dst-ip": ")");
  append_address(out, flow.dst, f.dst_override);
  out.append(R"(", "protocol": ")");
  out.append(to_string(flow.protocol));
  out.append(R"(", "src-port": )");
  append_number(out, flow.src_port);
  out.append(R"(, "dst-port": )");
  append_number(out, flow.dst_port);
  out.append(R"(}, "context": {"experiment-id": )");
  append_number(out, flow.experiment);
  out.append(R"(, "activity-id": )");
  append_number(out, flow.activity);
  out.append(R"(, "application": )");
  append_json_string(out, f.application);
  out.push_back('}');
  if (f.usage) {
    out.append(R"(, "usage": {"received": )");
    append_number(out, f.usage->received);
    out.append(R"(, "sent": )");
    append_number(out, f.usage->sent);
    out.push_back('}');
  }
  if (!f.netlink.empty()) {
    out.append(R"(, "netlink": )");
    out.append(f.netlink);
  }
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
