// SPDX-License-Identifier: Apache-2.0
#include "plugins/netstat/proc_net_tcp.hpp"

#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace flowd::netstat {
namespace {

// Next whitespace-separated field of `s` starting at `pos`; empty at the end.
std::string_view next_field(std::string_view s, std::size_t& pos) {
  while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
  std::size_t b = pos;
  while (pos < s.size() && s[pos] != ' ' && s[pos] != '\t') ++pos;
  return s.substr(b, pos - b);
}

template <class T>
bool parse_hex(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

// "0100007F:0277" or 32 hex digits ":" 4 hex digits.
bool parse_endpoint(std::string_view s, IpAddress& addr, std::uint16_t& port, ProcLineError& err) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) {
    err = ProcLineError::kAddress;
    return false;
  }
  std::string_view hex = s.substr(0, colon);
  if (hex.size() != 8 && hex.size() != 32) {
    err = ProcLineError::kAddress;
    return false;
  }
  addr = IpAddress{};
  addr.family = hex.size() == 8 ? AF_INET : AF_INET6;
  for (std::size_t i = 0; i < hex.size() / 8; ++i) {
    std::uint32_t word = 0;
    if (!parse_hex(hex.substr(i * 8, 8), word)) {
      err = ProcLineError::kAddress;
      return false;
    }
    // The kernel printed the word as a native integer: its memory layout is the network order.
    std::memcpy(addr.bytes.data() + i * 4, &word, 4);
  }
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (addr.family == AF_INET6 && std::memcmp(addr.bytes.data(), kMapped, 12) == 0) {
    std::memmove(addr.bytes.data(), addr.bytes.data() + 12, 4);
    std::memset(addr.bytes.data() + 4, 0, 12);
    addr.family = AF_INET;
  }
  std::string_view port_hex = s.substr(colon + 1);
  if (port_hex.size() != 4 || !parse_hex(port_hex, port)) {
    err = ProcLineError::kPort;
    return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(ProcLineError e) {
  switch (e) {
    case ProcLineError::kNone:
      return "none";
    case ProcLineError::kFields:
      return "fields";
    case ProcLineError::kAddress:
      return "address";
    case ProcLineError::kPort:
      return "port";
    case ProcLineError::kState:
      return "state";
    case ProcLineError::kInode:
      return "inode";
  }
  return "unknown";
}

ProcLineError parse_proc_net_tcp_line(std::string_view line, scanner::Connection& out) {
  std::size_t pos = 0;
  std::string_view f[10];
  for (auto& field : f) field = next_field(line, pos);
  // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
  if (f[9].empty() || f[0].empty() || f[0].back() != ':') return ProcLineError::kFields;
  ProcLineError err = ProcLineError::kNone;
  out = scanner::Connection{};
  if (!parse_endpoint(f[1], out.local, out.local_port, err)) return err;
  if (!parse_endpoint(f[2], out.remote, out.remote_port, err)) return err;
  unsigned state = 0;
  if (f[3].size() != 2 || !parse_hex(f[3], state) || state == 0 || state > 12)
    return ProcLineError::kState;
  out.state = static_cast<std::uint8_t>(state);
  auto [p, ec] = std::from_chars(f[9].data(), f[9].data() + f[9].size(), out.inode);
  if (ec != std::errc() || p != f[9].data() + f[9].size()) return ProcLineError::kInode;
  return ProcLineError::kNone;
}

}  // namespace flowd::netstat
