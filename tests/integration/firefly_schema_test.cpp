// SPDX-License-Identifier: Apache-2.0
// Every kind of firefly udp_firefly sends validates against docs/firefly.schema.json.
#include <gtest/gtest.h>

#include "daemon_fixture.hpp"
#include "firefly_schema.hpp"

namespace flowd::test {
namespace {

TEST(FireflySchema, EveryFireflyWeSendIsValid) {
  Daemon d;
  d.start(d.config("ip4_src = 192.0.2.1\n"));
  std::string lines =
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n"
      "ongoing tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n"
      "end tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n"
      "end tcp 127.0.0.1 1 127.0.0.1 2 atlas Debug\n"  // end without a start
      "start udp 127.0.0.1 0 127.0.0.1 65535 0 0\n"
      "start udp 127.0.0.1 65535 127.0.0.1 0 511 63\n";
  std::string lines6 =
      "start tcp ::1 2345 ::1 5777 cms Cache\n"
      "ongoing udp ::1 2345 ::1 5777 3 3\n"
      "end tcp ::1 2345 ::1 5777 3 3\n";
  write_pipe(d.pipe(), lines + lines6);
  auto got = d.rx4.receive_many(6);
  auto got6 = d.rx6.receive_many(3);
  ASSERT_EQ(got.size(), 6u) << d.proc->log();
  ASSERT_EQ(got6.size(), 3u) << d.proc->log();
  got.insert(got.end(), got6.begin(), got6.end());
  EXPECT_EQ(firefly_schema_errors(got), "");
  // And the published Scitags schema (as flowd-go ships it), which wants ports 1..65535.
  std::vector<std::string> nonzero_ports;
  for (const auto& g : got)
    if (g.find("-port\": 0,") == std::string::npos && g.find("-port\": 0}") == std::string::npos)
      nonzero_ports.push_back(g);
  EXPECT_EQ(nonzero_ports.size(), got.size() - 2);
  EXPECT_EQ(firefly_schema_errors(nonzero_ports,
                                  fixtures_dir() + "/firefly/flowd-go-firefly-schema-v1.0.0.json"),
            "");
  EXPECT_EQ(d.stop(), 0);
}

TEST(FireflySchema, TheValidatorCatchesWhatTheSchemaForbids) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n");
  auto good = d.rx4.receive();
  ASSERT_TRUE(good);
  EXPECT_EQ(firefly_schema_errors({*good}), "");
  // With netlink = yes a firefly also carries usage and netlink (tcp_enrichment.hpp).
  std::string tcp = *good;
  tcp.insert(tcp.rfind('}'),
             R"(, "usage": {"received": 0, "sent": 5001}, "netlink": {"src": "::1", )"
             R"("dst": "::1", "src_port": 1, "dst_port": 2, "cong_algo": "cubic", )"
             R"("rtt": 0.05, "tcp_info": {"rtt": 50}})");
  EXPECT_EQ(firefly_schema_errors({tcp}), "");
  EXPECT_EQ(
      firefly_schema_errors({tcp}, fixtures_dir() + "/firefly/flowd-go-firefly-schema-v1.0.0.json"),
      "");
  for (auto [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"\"sent\": 5001", "\"sent\": 5001.5"},
                                                        {"\"received\": 0, ", ""},
                                                        {"\"sent\": 5001", "\"sent\": -1"},
                                                        {"\"rtt\": 0.05", "\"rtt\": \"0.05\""},
                                                        {"\"rtt\": 0.05, ", ""}}) {
    std::string bad = tcp;
    bad.replace(bad.find(from), from.size(), to);
    EXPECT_NE(firefly_schema_errors({bad}), "") << bad;
  }
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"\"afi\": \"ipv4\"", "\"afi\": \"ipv6\""},
           {"\"src-port\": 2345", "\"src-port\": 70000"},
           {"\"state\": \"start\"", "\"state\": \"begin\""},
           {"\"version\": 1", "\"version\": 2"},
           {"\"protocol\": \"tcp\"", "\"protocol\": \"tcp\", \"extra\": 1"}}) {
    std::string bad = *good;
    bad.replace(bad.find(from), from.size(), to);
    EXPECT_NE(firefly_schema_errors({bad}), "") << bad;
  }
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
