// SPDX-License-Identifier: Apache-2.0
// Templates survive a restart (issue 16 §3): the real daemon learns an IPFIX template over UDP, is
// stopped (or killed after a periodic save) and started again, and the exporter's next data, sent
// without the template, decodes at once. Without work_dir the same data waits for a template.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "daemon_fixture.hpp"
#include "ipfix_export.hpp"

namespace flowd::test {
namespace {

// An exporter: one UDP socket with one source port for the whole test, since IPFIX templates belong
// to the exporter's address and port (RFC 7011 §8.4).
class Exporter {
 public:
  explicit Exporter(const char* address = "127.0.0.1")
      : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, address, &a.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Exporter() { ::close(fd_); }
  void send(int port, const std::string& msg) const {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(msg.size()));
  }

 private:
  int fd_;
};

const std::vector<ExportedFlow> kFlows = {{"198.18.0.1", "198.18.0.2", 40001, 443, 6, 0, 1000, 10},
                                          {"198.18.0.1", "198.18.0.3", 40002, 443, 6, 0, 2000, 20},
                                          {"198.18.0.4", "198.18.0.2", 40003, 443, 6, 0, 3000, 30}};

const std::string kRecords = "flowd_netflow_records_total{version=\"10\"}";

std::string netflow_config(const Daemon& d, int port, const std::string& extra = "") {
  return d.config_with_plugins("netflow") +
         "\n[plugin.netflow]\nlisten = 127.0.0.1:" + std::to_string(port) + "\ntcp_listen =\n" +
         extra;
}

std::string template_file(const Daemon& d) {
  return d.dir.file("cache") + "/templates.plugin.netflow.json";
}

// Sends the template alone and waits until flowd holds it.
void teach_template(Daemon& d, const Exporter& exporter, int port) {
  exporter.send(port, ipfix_export(kFlows, 0, IpfixSets::kTemplateOnly));
  const auto m = d.scrape_until("flowd_netflow_templates", 1);
  ASSERT_EQ(metric_sum(m, "flowd_netflow_templates"), 1) << m << d.proc->log();
  ASSERT_EQ(metric_sum(m, kRecords).value_or(0), 0);
}

TEST(TemplateRestart, DataAfterARestartDecodesWithoutWaitingForTheNextTemplate) {
  Daemon d;
  Exporter exporter;
  const int port = free_udp_port();
  const std::string cfg = netflow_config(d, port);
  d.start(cfg);
  teach_template(d, exporter, port);
  EXPECT_EQ(d.stop(), 0);
  const std::string saved = read_file(template_file(d));
  EXPECT_NE(saved.find("\"format\":\"flowd-templates\""), std::string::npos) << saved;

  d.start(cfg);
  EXPECT_NE(d.proc->log().find("took back 1 of 1 template(s)"), std::string::npos) << d.proc->log();
  exporter.send(port, ipfix_export(kFlows, 1, IpfixSets::kDataOnly));
  auto m = d.scrape_until(kRecords, 3);
  EXPECT_EQ(metric_sum(m, kRecords), 3) << m << d.proc->log();
  EXPECT_EQ(metric_value(m, "flowd_netflow_pending_records"), 0);
  EXPECT_EQ(metric_value(m, "flowd_netflow_template_file_total{event=\"restored\"}"), 1);
  EXPECT_EQ(metric_value(m, "flowd_netflow_template_file_total{event=\"refused\"}"), 0);
  EXPECT_EQ(d.stop(), 0);

  // The control: without work_dir nothing is kept, and the same data waits for its template.
  std::string no_cache = cfg;
  no_cache.replace(no_cache.find("work_dir = "), 11, "work_dir = \n#");
  d.start(no_cache);
  exporter.send(port, ipfix_export(kFlows, 2, IpfixSets::kDataOnly));
  m = d.scrape_until("flowd_netflow_pending_records", 1);
  EXPECT_EQ(metric_value(m, "flowd_netflow_pending_records"), 1) << m;
  EXPECT_EQ(metric_sum(m, kRecords).value_or(0), 0);
  EXPECT_EQ(d.stop(), 0);
}

TEST(TemplateRestart, APeriodicSaveOutlivesKillNine) {
  Daemon d;
  Exporter exporter;
  const int port = free_udp_port();
  // The default idle_timeout (60 s): the save keeps its own interval all the same. A new user's
  // try found none within 5 s of a 2 s interval, the saves riding on a timer of idle_timeout / 4.
  const std::string cfg = netflow_config(d, port, "template_save_interval = 2s\n");
  d.start(cfg);
  teach_template(d, exporter, port);
  bool saved = false;
  for (int i = 0; i < 70 && !saved; ++i) {
    std::this_thread::sleep_for(50ms);
    saved = read_file(template_file(d)).find("\"id\":256") != std::string::npos;
  }
  ASSERT_TRUE(saved) << "no periodic save within 3.5 s of a 2 s interval; log:\n" << d.proc->log();
  d.proc->signal(SIGKILL);
  EXPECT_EQ(d.proc->wait(5s), 128 + SIGKILL);

  d.start(cfg);
  exporter.send(port, ipfix_export(kFlows, 1, IpfixSets::kDataOnly));
  const auto m = d.scrape_until(kRecords, 3);
  EXPECT_EQ(metric_sum(m, kRecords), 3) << m << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// Restored templates count under their own exporter in the template gauge from the start (a new
// user's try found them under exporter="other" until the exporter sent again), within
// max_exporter_series as the exporter's packets would be; and a reload that restarts the plugin
// keeps those series (it found them gone).
TEST(TemplateRestart, RestoredTemplatesCountUnderTheirExporterAcrossRestartAndReload) {
  Daemon d;
  Exporter first("127.0.0.1"), second("127.0.0.2");
  const int port = free_udp_port();
  const std::string cfg = netflow_config(d, port, "max_exporter_series = 1\n");
  d.start(cfg);
  teach_template(d, first, port);
  second.send(port, ipfix_export(kFlows, 0, IpfixSets::kTemplateOnly));
  ASSERT_EQ(metric_sum(d.scrape_until("flowd_netflow_templates", 2), "flowd_netflow_templates"), 2);
  EXPECT_EQ(d.stop(), 0);

  const std::string own = "flowd_netflow_templates{exporter=\"127.0.0.1\"}";
  const std::string other = "flowd_netflow_templates{exporter=\"other\"}";
  const std::string second_own = "flowd_netflow_templates{exporter=\"127.0.0.2\"}";
  auto expect_own_series = [&](const std::string& when) {
    const auto m = d.scrape_until("flowd_netflow_templates", 2);
    EXPECT_EQ(metric_sum(m, own), 1) << when << "\n" << m << d.proc->log();
    // The cap (1) is taken by the first: the second's template is under "other", as its
    // packets would be.
    EXPECT_EQ(metric_sum(m, other), 1) << when << "\n" << m;
    EXPECT_FALSE(metric_sum(m, second_own)) << when << "\n" << m;
  };
  d.start(cfg);  // nothing is sent after the restart
  expect_own_series("after a restart");
  // A reload that restarts the plugin (its section changed).
  d.dir.write("flowd.cfg", cfg + "template_save_interval = 10m\n");
  d.proc->signal(SIGHUP);
  for (int i = 0; i < 500 && d.proc->log().find("reloaded:") == std::string::npos; ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_NE(d.proc->log().find("reloaded:"), std::string::npos) << d.proc->log();
  expect_own_series("after a reload");
  EXPECT_EQ(d.stop(), 0);
}

// A template file flowd could have written for another configuration: `n` IPFIX templates of
// 127.0.0.1:`port`, domain 0, seen now, after `extra` entries (JSON objects, each followed by a
// comma).
std::string template_file_body(int n, int port, const std::string& extra = "") {
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::string body =
      R"({"format":"flowd-templates","version":1,"domains":[],"templates":[)" + extra;
  for (int i = 0; i < n; ++i)
    body += (i ? "," : "") + std::string(R"({"exporter":"127.0.0.1","port":)") +
            std::to_string(port) + R"(,"ipfix_version":10,"domain":0,"id":)" +
            std::to_string(256 + i) + R"(,"options":false,"scope_count":0,"seen_ms":)" +
            std::to_string(now_ms) + R"(,"fields":[[0,8,4],[0,12,4],[0,2,8]]})";
  return body + "]}";
}

// The start-up line says what the bounds kept, and what they did not and why (a new user's try
// read "took back 300000" when the bounds had kept 94,786; issue 16).
TEST(TemplateRestart, TheRestoreLineSaysWhatTheBoundsKeptAndWhy) {
  Daemon d;
  const int port = free_udp_port();
  std::filesystem::create_directories(d.dir.file("cache"));
  d.dir.write("cache/templates.plugin.netflow.json", template_file_body(2000, 4739));
  d.start(netflow_config(d, port,
                         "max_template_bytes_per_exporter = 65536\nmax_template_bytes = 131072\n"));
  const auto m = d.scrape_until("flowd_netflow_templates", 1);
  const auto held = metric_sum(m, "flowd_netflow_templates").value_or(-1);
  ASSERT_GT(held, 0) << m;
  ASSERT_LT(held, 2000) << m;
  const std::string log = d.proc->log();
  EXPECT_NE(
      log.find("took back " + std::to_string(static_cast<int>(held)) + " of 2000 template(s)"),
      std::string::npos)
      << log;
  EXPECT_NE(log.find(std::to_string(2000 - static_cast<int>(held)) +
                     " evicted to stay within max_template_bytes_per_exporter"),
            std::string::npos)
      << log;
  EXPECT_EQ(metric_value(m, "flowd_netflow_template_file_total{event=\"restored\"}"), held);
  EXPECT_EQ(metric_value(m, "flowd_netflow_template_file_total{event=\"invalid\"}"), 2000 - held);
  EXPECT_EQ(d.stop(), 0);
}

// One malformed entry, or one seen in 2100, costs itself, not the file (a new user's try found the
// whole file refused for one, and the other taken as seen now; issue 16).
TEST(TemplateRestart, AMalformedOrFutureEntryIsSkippedAndTheRestTakenBack) {
  Daemon d;
  Exporter exporter;
  const int port = free_udp_port();
  const std::string cfg = netflow_config(d, port);
  d.start(cfg);
  teach_template(d, exporter, port);
  EXPECT_EQ(d.stop(), 0);
  std::string saved = read_file(template_file(d));
  // The saved template, as it is, plus a malformed one and one of 2100 before it.
  const auto first = saved.find("{\"domain\"", saved.find("\"templates\":["));
  ASSERT_NE(first, std::string::npos) << saved;
  saved.insert(first,
               R"({"exporter":"127.0.0.1","port":1,"ipfix_version":10,"domain":0,"id":"x"},)"
               R"({"exporter":"127.0.0.1","port":1,"ipfix_version":10,"domain":0,"id":300,)"
               R"("options":false,"scope_count":0,"seen_ms":4102444800000,"fields":[[0,8,4]]},)");
  // And a malformed domain: counted as a domain, not among the templates left out (the restore
  // line's numbers did not add up: "1 of 3 ... left out: 3 malformed entries").
  const auto domains = saved.find("\"domains\":[");
  ASSERT_NE(domains, std::string::npos) << saved;
  const bool empty = saved[domains + 11] == ']';
  saved.insert(domains + 11,
               std::string(R"({"exporter":"127.0.0.1","port":1,"ipfix_version":10,"domain":"x",)"
                           R"("seen_ms":0,"rates":[]})") +
                   (empty ? "" : ","));
  d.dir.write("cache/templates.plugin.netflow.json", saved);
  d.start(cfg);
  const std::string log = d.proc->log();
  EXPECT_NE(log.find("2 malformed template(s) and 1 domain(s) skipped (the first: template 1"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("took back 1 of 3 template(s) and the sampling state of"), std::string::npos)
      << log;
  EXPECT_NE(log.find("; left out: 2 malformed"), std::string::npos) << log;
  EXPECT_EQ(log.find("; left out: 3 malformed"), std::string::npos) << log;
  exporter.send(port, ipfix_export(kFlows, 1, IpfixSets::kDataOnly));
  const auto m = d.scrape_until(kRecords, 3);
  EXPECT_EQ(metric_sum(m, kRecords), 3) << m << log;
  EXPECT_EQ(metric_value(m, "flowd_netflow_template_file_total{event=\"invalid\"}"), 3)
      << "2 templates and 1 domain";
  EXPECT_EQ(d.stop(), 0);
}

// A file larger than the configured template bounds could have written is not read: the log names
// it and the bound, and flowd starts at once (a new user's try: 100 MB, 983 MB of memory, 10.7 s).
TEST(TemplateRestart, AFileLargerThanTheBoundsIsNotRead) {
  Daemon d;
  const int port = free_udp_port();
  std::filesystem::create_directories(d.dir.file("cache"));
  // The bound for these settings and one worker is under 14 MB; this file is 40 MB of templates.
  std::string body = template_file_body(1, 4739);
  std::string many = body.substr(body.find("{\"exporter\""));
  many = many.substr(0, many.size() - 2) + ",";
  std::string big = R"({"format":"flowd-templates","version":1,"domains":[],"templates":[)";
  while (big.size() < (40u << 20)) big += many;
  big.back() = ']';
  d.dir.write("cache/templates.plugin.netflow.json", big + "}");
  const auto t0 = std::chrono::steady_clock::now();
  d.start(netflow_config(d, port,
                         "max_template_bytes_per_exporter = 65536\nmax_template_bytes = 65536\n"));
  const auto took = std::chrono::steady_clock::now() - t0;
  const std::string log = d.proc->log();
  EXPECT_NE(
      log.find(template_file(d) + ": " + std::to_string(big.size() + 1) + " bytes, more than the "),
      std::string::npos)
      << log;
  EXPECT_NE(log.find("read at most; starting without saved templates"), std::string::npos) << log;
  EXPECT_LT(took, 3s) << "a file that is not read costs no time";
  EXPECT_EQ(metric_value(d.scrape(), "flowd_netflow_template_file_total{event=\"refused\"}"), 1);
  EXPECT_EQ(d.stop(), 0);
}

TEST(TemplateRestart, ACorruptOrForeignFileIsLoggedAndIgnored) {
  for (const std::string& body : {std::string("\x7f"
                                              "ELF garbage\n"),
                                  std::string(R"({"format": "flowd-templates", "version": 7})")}) {
    Daemon d;
    const int port = free_udp_port();
    std::filesystem::create_directories(d.dir.file("cache"));
    d.dir.write("cache/templates.plugin.netflow.json", body);
    d.start(netflow_config(d, port));
    EXPECT_NE(d.proc->log().find("not a flowd template file"), std::string::npos) << d.proc->log();
    EXPECT_TRUE(d.proc->running());
    Exporter exporter;
    exporter.send(port, ipfix_export(kFlows));
    const auto m = d.scrape_until(kRecords, 3);
    EXPECT_EQ(metric_sum(m, kRecords), 3);
    EXPECT_EQ(metric_value(m, "flowd_netflow_template_file_total{event=\"refused\"}"), 1);
    EXPECT_EQ(d.stop(), 0);
    // Replaced by a good file on stop.
    EXPECT_NE(read_file(template_file(d)).find("\"id\":256"), std::string::npos);
  }
}

}  // namespace
}  // namespace flowd::test
