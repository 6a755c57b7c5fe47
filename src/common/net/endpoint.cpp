// SPDX-License-Identifier: Apache-2.0
#include "common/net/endpoint.hpp"

#include <cctype>
#include <charconv>

namespace flowd::net {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535)
    return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

bool valid_host(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
          c == '_' || c == '%'))
      return false;
  return true;
}

}  // namespace

std::string Endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::uint16_t default_port) {
  Endpoint e;
  e.port = default_port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    e.host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      auto p = parse_port(rest.substr(1));
      if (!p) return std::nullopt;
      e.port = *p;
    }
  } else {
    auto first = text.find(':');
    auto last = text.rfind(':');
    if (first != std::string_view::npos && first == last) {
      auto p = parse_port(text.substr(last + 1));
      if (!p) return std::nullopt;
      e.port = *p;
      e.host = std::string(text.substr(0, last));
    } else {
      e.host = std::string(text);  // a bare name, IPv4 or IPv6 literal
    }
  }
  if (!valid_host(e.host) || e.port == 0) return std::nullopt;
  return e;
}

}  // namespace flowd::net
