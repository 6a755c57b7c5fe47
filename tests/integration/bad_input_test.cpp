// SPDX-License-Identifier: Apache-2.0
// Bad and awkward input on the real pipe: flowd stays up, every good line is delivered, every bad
// one is counted by reason.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

std::string good_line(int src_port) {
  return "start tcp 127.0.0.1 " + std::to_string(src_port) + " 127.0.0.1 5777 2 9\n";
}

std::set<int> src_ports(const std::vector<std::string>& fireflies) {
  std::set<int> ports;
  for (const auto& f : fireflies) {
    auto at = f.find("\"src-port\": ");
    if (at != std::string::npos) ports.insert(std::stoi(f.substr(at + 12)));
  }
  return ports;
}

double rejected(const std::string& metrics, const std::string& reason) {
  return metric_value(metrics, "flowd_np_api_rejected_lines_total{reason=\"" + reason + "\"}")
      .value_or(-1);
}

TEST(BadInput, MalformedLinesAreCountedByReasonAndGoodOnesDelivered) {
  Daemon d;
  d.start(d.config());
  std::string lines =
      good_line(1001) +
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 2\n"             // fields
      "begin tcp 127.0.0.1 2345 127.0.0.1 5777 2 9\n"           // state
      "start sctp 127.0.0.1 2345 127.0.0.1 5777 2 9\n"          // protocol
      "start tcp 127.0.0.1 2345 10.0.0.999 5777 2 9\n"          // address
      "start tcp 127.0.0.1 2345 ::1 5777 2 9\n"                 // family
      "start tcp 127.0.0.1 x 127.0.0.1 5777 2 9\n"              // port
      "start tcp 127.0.0.1 2345 127.0.0.1 65536 2 9\n"          // port
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 512 9\n"         // experiment
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 nosuchexp 9\n"   // experiment
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 2 64\n"          // activity
      "start tcp 127.0.0.1 2345 127.0.0.1 5777 atlas Nope\n"    // activity
      "start\ttcp  127.0.0.1 1002\t127.0.0.1   5777 2 9\r\n" +  // any whitespace: good
      good_line(1003);
  write_pipe(d.pipe(), lines);
  auto got = d.rx4.receive_many(3);
  EXPECT_EQ(src_ports(got), (std::set<int>{1001, 1002, 1003})) << d.proc->log();
  std::string m = d.scrape();
  EXPECT_EQ(metric_value(m, "flowd_np_api_lines_total"), 14);
  EXPECT_EQ(rejected(m, "fields"), 1);
  EXPECT_EQ(rejected(m, "state"), 1);
  EXPECT_EQ(rejected(m, "protocol"), 1);
  EXPECT_EQ(rejected(m, "address"), 1);
  EXPECT_EQ(rejected(m, "family"), 1);
  EXPECT_EQ(rejected(m, "port"), 2);
  EXPECT_EQ(rejected(m, "experiment"), 2);
  EXPECT_EQ(rejected(m, "activity"), 2);
  EXPECT_NE(d.proc->log().find("rejected line (family"), std::string::npos) << d.proc->log();
  EXPECT_TRUE(d.proc->running());
  EXPECT_EQ(d.stop(), 0);
}

// try15i C: a flow with an unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0) on either side was
// taken: its fireflies "to the peer" came back to this host (here: to the receivers on 127.0.0.1
// and ::1), and the flow journal skipped it at a restart, so after a kill -9 its end was never
// sent. Refused as bad input, logged and counted as `address`; nothing is sent for it.
TEST(BadInput, AFlowWithAnUnspecifiedAddressIsRefusedAndNothingIsSentForIt) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(),
             "start tcp 127.0.0.1 4001 0.0.0.0 5777 2 9\n"
             "start tcp 0.0.0.0 4002 127.0.0.1 5777 2 9\n"
             "start udp ::1 4003 :: 5777 2 9\n"
             "start tcp ::1 4004 ::ffff:0.0.0.0 5777 2 9\n"
             "start tcp ::ffff:0.0.0.0 4005 ::1 5777 2 9\n"
             "end tcp 127.0.0.1 4001 0.0.0.0 5777 2 9\n" +
                 good_line(4006));
  auto got = d.rx4.receive_many(2, 1500ms);
  EXPECT_EQ(src_ports(got), std::set<int>{4006}) << d.proc->log();
  EXPECT_FALSE(d.rx6.receive(500ms)) << d.proc->log();
  std::string m = d.scrape_until("flowd_np_api_rejected_lines_total{reason=\"address\"}", 6);
  EXPECT_EQ(rejected(m, "address"), 6) << d.proc->log();
  EXPECT_EQ(metric_value(m, "flowd_np_api_lines_total"), 7);
  const std::string log = d.proc->log();
  EXPECT_NE(log.find("rejected line (address"), std::string::npos) << log;
  EXPECT_NE(log.find("destination 0.0.0.0 is the unspecified address"), std::string::npos) << log;
  EXPECT_NE(log.find("source ::ffff:0.0.0.0 is the unspecified address"), std::string::npos) << log;
  EXPECT_EQ(d.stop(), 0);
  // Nothing of them was journaled (the good flow's start and the stop's end are).
  std::string journal;
  for (const auto& e : std::filesystem::directory_iterator(d.dir.file("cache")))
    if (e.path().filename().string().ends_with(".journal")) journal += read_file(e.path().string());
  EXPECT_EQ(journal.find("0.0.0.0"), std::string::npos) << journal;
  EXPECT_EQ(journal.find(" :: "), std::string::npos) << journal;
}

TEST(BadInput, OneMebibyteLineWithoutNewlineThenAGoodLine) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(), std::string(1 << 20, 'A'));  // the writer goes away without a newline
  write_pipe(d.pipe(), good_line(2001));
  auto f = d.rx4.receive();
  ASSERT_TRUE(f) << d.proc->log();
  EXPECT_EQ(src_ports({*f}), std::set<int>{2001});
  std::string m = d.scrape();
  EXPECT_EQ(rejected(m, "too_long"), 1);
  write_pipe(d.pipe(), good_line(2002));
  EXPECT_TRUE(d.rx4.receive());
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, BinaryGarbageIsRejected) {
  Daemon d;
  d.start(d.config());
  std::string garbage;
  for (int i = 0; i < 256; ++i)
    if (i != '\n') garbage.push_back(static_cast<char>(i));
  write_pipe(d.pipe(), garbage + "\n" + std::string("\x00\x01\x02 start\n", 10) + good_line(3001));
  auto f = d.rx4.receive();
  ASSERT_TRUE(f) << d.proc->log();
  EXPECT_EQ(src_ports({*f}), std::set<int>{3001});
  EXPECT_EQ(rejected(d.scrape(), "binary"), 2);
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, LinesSplitOverManyWritesAreReassembled) {
  Daemon d;
  d.start(d.config());
  std::string text = good_line(4001) + good_line(4002) + good_line(4003);
  int fd = open(d.pipe().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  for (char c : text) ASSERT_EQ(write(fd, &c, 1), 1);
  close(fd);
  EXPECT_EQ(src_ports(d.rx4.receive_many(3)), (std::set<int>{4001, 4002, 4003})) << d.proc->log();
  EXPECT_EQ(metric_value(d.scrape(), "flowd_np_api_lines_total"), 3);
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, WriterClosingMidLineDoesNotCostTheNextLine) {
  Daemon d;
  d.start(d.config());
  write_pipe(d.pipe(), "start tcp 127.0.0.1 12");  // cut short
  write_pipe(d.pipe(), good_line(5001));
  auto f = d.rx4.receive();
  ASSERT_TRUE(f) << d.proc->log();
  EXPECT_EQ(src_ports({*f}), std::set<int>{5001});
  EXPECT_EQ(rejected(d.scrape(), "truncated"), 1);
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, PartialLineIsDiscardedAfterTheTimeout) {
  Daemon d;
  std::string cfg = d.config();
  cfg.replace(cfg.find("[plugin.np_api]\n") + 16, 0, "partial_timeout_ms = 100\n");
  d.start(cfg);
  write_pipe(d.pipe(), "start tcp 127.0.0.1 66");
  // Nothing can be awaited here: the discard is flowd's own timer. Scrape until it is counted.
  double truncated = 0;
  for (int i = 0; i < 100 && truncated < 1; ++i) {
    usleep(20000);
    truncated = rejected(d.scrape(), "truncated");
  }
  EXPECT_EQ(truncated, 1);
  write_pipe(d.pipe(), "00 127.0.0.1 5777 2 9\n");  // would have completed the old line
  EXPECT_FALSE(d.rx4.receive(300ms));
  EXPECT_EQ(rejected(d.scrape(), "fields"), 1);
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, RejectedLinesAreLoggedRateLimited) {
  Daemon d;
  d.start(d.config());
  std::string flood;
  for (int i = 0; i < 1000; ++i) flood += "garbage line " + std::to_string(i) + "\n";
  write_pipe(d.pipe(), flood + good_line(6001));
  ASSERT_TRUE(d.rx4.receive()) << "the good line after the flood must still be delivered";
  auto count = [](const std::string& log, const std::string& what) {
    std::size_t n = 0;
    for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(d.proc->log(), "rejected line (fields"), 10u) << "a burst of 10, then quiet";
  EXPECT_EQ(rejected(d.scrape(), "fields"), 1000) << "every rejected line is counted";
  usleep(1100000);  // the limiter lets one line through per second after the burst
  write_pipe(d.pipe(), "one more bad line\n");
  // The log file is the only signal that the line was handled: re-read it briefly.
  std::string log = d.proc->log();
  for (int i = 0; i < 100 && log.find("(990 more rejected lines not logged)") == std::string::npos;
       ++i) {
    usleep(20000);
    log = d.proc->log();
  }
  EXPECT_NE(log.find("(990 more rejected lines not logged)"), std::string::npos)
      << log.substr(log.size() - 600);
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, SendErrorsAreCountedNotFatal) {
  Daemon d;
  d.start(d.config());
  // The kernel refuses a broadcast without SO_BROADCAST (EACCES) before anything leaves the host.
  write_pipe(d.pipe(), "start udp 127.0.0.1 1 255.255.255.255 2 2 9\n" + good_line(7001));
  auto f = d.rx4.receive();
  ASSERT_TRUE(f) << d.proc->log();
  EXPECT_EQ(src_ports({*f}), std::set<int>{7001});
  std::string m = d.scrape_until("flowd_fireflies_sent_total{destination=\"flow\"}", 1);
  EXPECT_EQ(metric_value(m, "flowd_firefly_send_errors_total{destination=\"flow\"}"), 1);
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"flow\"}"), 1);
  EXPECT_NE(d.proc->log().find("sending a firefly failed: Permission denied"), std::string::npos)
      << d.proc->log();
  EXPECT_TRUE(d.proc->running());
  EXPECT_EQ(d.stop(), 0);
}

TEST(BadInput, TenConcurrentWritersLoseNothing) {
  Daemon d;
  d.start(d.config());
  constexpr int kWriters = 10, kLines = 1000;
  // Read while the writers write: loopback UDP drops what a full receive buffer cannot hold.
  std::vector<std::string> got;
  std::thread reader([&] { got = d.rx4.receive_many(kWriters * kLines); });
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      int fd = open(d.pipe().c_str(), O_WRONLY);
      for (int i = 0; i < kLines; ++i) {
        std::string l = good_line(10000 + w * kLines + i);
        if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) break;
      }
      close(fd);
    });
  }
  for (auto& t : writers) t.join();
  reader.join();
  std::string m = d.scrape();
  // flowd handed every firefly to the kernel...
  EXPECT_EQ(metric_value(m, "flowd_fireflies_sent_total{destination=\"flow\"}"), kWriters * kLines);
  // ...and, given a large enough receive buffer, every one arrived.
  if (d.rx4.big_buffer())
    EXPECT_EQ(src_ports(got).size(), static_cast<std::size_t>(kWriters * kLines));
  else
    GTEST_LOG_(WARNING) << "receive buffer capped (not root): only " << got.size()
                        << " datagrams checked";
  EXPECT_EQ(metric_value(m, "flowd_np_api_lines_total"), kWriters * kLines);
  EXPECT_EQ(metric_value(m, "flowd_bus_dropped_events_total{backend=\"udp_firefly\"}"), 0);
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
