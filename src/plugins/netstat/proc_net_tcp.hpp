// SPDX-License-Identifier: Apache-2.0
// One line of /proc/net/tcp or /proc/net/tcp6 (net/ipv4/tcp_ipv4.c get_tcp4_sock, tcp_ipv6.c):
//   "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout
//   inode ..."
// Addresses are the kernel's 32-bit words printed in host byte order (%08X each), ports %04X.
#pragma once

#include <cstdint>
#include <string_view>

#include "plugins/scanner/connection_tracker.hpp"

namespace flowd::netstat {

enum class ProcLineError : std::uint8_t { kNone, kFields, kAddress, kPort, kState, kInode };
inline constexpr std::size_t kProcLineErrorCount = 6;
std::string_view to_string(ProcLineError e);

// Parses one line (without its newline). The header line is an error (kFields or kAddress): the
// caller skips the first line of each file.
ProcLineError parse_proc_net_tcp_line(std::string_view line, scanner::Connection& out);

}  // namespace flowd::netstat
