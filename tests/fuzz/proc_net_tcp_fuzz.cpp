// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the scanners' parsers. Input starting with 'N' is one sock_diag answer message
// (parse_diag_message, bounds given by the input); anything else is /proc/net/tcp{,6} text, parsed
// line by line as the netstat plugin does.
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "netlink/sock_diag.hpp"
#include "plugins/netstat/proc_net_tcp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 0 && data[0] == 'N') {
    // A copy with the alignment the kernel's buffer has.
    std::vector<std::uint64_t> buf((size - 1) / 8 + 1);
    std::memcpy(buf.data(), data + 1, size - 1);
    flowd::netlink::SockEntry e;
    flowd::netlink::TcpDetails d;
    std::string error;
    if (size - 1 >= sizeof(nlmsghdr)) {
      bool ok = flowd::netlink::parse_diag_message(reinterpret_cast<const nlmsghdr*>(buf.data()),
                                                   size - 1, e, &d, error);
      if (ok && d.info_len > sizeof(tcp_info)) __builtin_trap();
      if (!ok && error.empty()) __builtin_trap();
    }
    return 0;
  }
  std::string_view text(reinterpret_cast<const char*>(data), size);
  flowd::scanner::Connection c;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    auto err = flowd::netstat::parse_proc_net_tcp_line(line, c);
    if (err == flowd::netstat::ProcLineError::kNone && (c.state == 0 || c.state > 12))
      __builtin_trap();
    if (flowd::netstat::to_string(err).empty()) __builtin_trap();
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  return 0;
}
