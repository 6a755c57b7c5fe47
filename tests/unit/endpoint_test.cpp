// SPDX-License-Identifier: Apache-2.0
// host[:port] as written in config files.
#include "common/net/endpoint.hpp"

#include <gtest/gtest.h>

#include <string>

namespace flowd::net {
namespace {

struct Good {
  const char* text;
  std::uint16_t default_port;
  const char* host;
  std::uint16_t port;
  const char* printed;
};

TEST(ParseEndpoint, Accepted) {
  const Good cases[] = {
      {"127.0.0.1:9000", 1, "127.0.0.1", 9000, "127.0.0.1:9000"},
      {"127.0.0.1", 10514, "127.0.0.1", 10514, "127.0.0.1:10514"},
      {"0.0.0.0:65535", 1, "0.0.0.0", 65535, "0.0.0.0:65535"},
      {"[::1]:9000", 1, "::1", 9000, "[::1]:9000"},
      {"[::1]", 514, "::1", 514, "[::1]:514"},
      {"::1", 514, "::1", 514, "[::1]:514"},
      {"2001:db8::7", 10514, "2001:db8::7", 10514, "[2001:db8::7]:10514"},
      {"[2001:db8::7]:1", 10514, "2001:db8::7", 1, "[2001:db8::7]:1"},
      {"[fe80::1%eth0]:514", 1, "fe80::1%eth0", 514, "[fe80::1%eth0]:514"},
      {"collector.example", 10514, "collector.example", 10514, "collector.example:10514"},
      {"collector.example:514", 10514, "collector.example", 514, "collector.example:514"},
      {"my-host_1", 80, "my-host_1", 80, "my-host_1:80"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto e = parse_endpoint(c.text, c.default_port);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, c.host);
    EXPECT_EQ(e->port, c.port);
    EXPECT_EQ(e->to_string(), c.printed);
    // What to_string prints parses back to the same endpoint.
    auto again = parse_endpoint(e->to_string(), 1);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->host, e->host);
    EXPECT_EQ(again->port, e->port);
  }
}

TEST(ParseEndpoint, Rejected) {
  for (const char* text : {
           "",                // nothing
           ":9000",           // no host
           "host:",           // empty port
           "host:0",          // port 0
           "host:65536",      // too large
           "host:-1",         // negative
           "host:+80",        // sign
           "host:http",       // a service name
           "host:80x",        // trailing junk
           "[::1",            // no closing bracket
           "[::1]9000",       // no ':' after ']'
           "[::1]:",          // empty port
           "[::1]:0",         // port 0
           "[]:80",           // empty host
           "[]",              // empty host
           "bad host",        // space
           "host/path:80",    // '/'
           "http://host:80",  // a URL
           "h\xc3\xb6st:80",  // non-ASCII
       }) {
    EXPECT_FALSE(parse_endpoint(text, 10514).has_value()) << text;
  }
  EXPECT_FALSE(parse_endpoint(std::string(254, 'a'), 1).has_value());
  EXPECT_TRUE(parse_endpoint(std::string(253, 'a'), 1).has_value());
}

TEST(ParseEndpoint, BareHostNeedsADefaultPort) {
  EXPECT_FALSE(parse_endpoint("collector.example", 0).has_value());
  EXPECT_FALSE(parse_endpoint("::1", 0).has_value());
  auto e = parse_endpoint("collector.example:514", 0);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->port, 514);
}

}  // namespace
}  // namespace flowd::net
