// SPDX-License-Identifier: Apache-2.0
// registry_refresh (issue 14) against a real HTTP server (python3's http.server, answering as the
// test tells it through a file: 200 with an ETag, 304 to a matching If-None-Match, 500, or never):
// a new registry reaches the running components, a failure keeps the one in use and is counted, a
// hanging refresh neither blocks the pipeline nor a stop, and the validators outlive a restart.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "daemon_fixture.hpp"

namespace flowd::test {
namespace {

constexpr const char* kServer = R"(import http.server, os, sys, time
root = sys.argv[1]
def read(name):
    with open(os.path.join(root, name), 'rb') as f:
        return f.read()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(os.path.join(root, 'requests.log'), 'a') as f:
            f.write('GET if-none-match=%s if-modified-since=%s\n' % (
                self.headers.get('If-None-Match', '-'), self.headers.get('If-Modified-Since', '-')))
        mode = read('mode').decode().strip()
        if mode == 'hang':
            time.sleep(3600)
            return
        if mode == '500':
            self.send_response(500)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        etag = read('etag').decode().strip()
        if self.headers.get('If-None-Match') == etag:
            self.send_response(304)
            self.send_header('ETag', etag)
            self.end_headers()
            return
        body = read('api.json')
        self.send_response(200)
        self.send_header('ETag', etag)
        self.send_header('Last-Modified', 'Tue, 01 Dec 2026 09:00:00 GMT')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
s = Server(('127.0.0.1', 0), Handler)
with open(os.path.join(root, 'port.tmp'), 'w') as f:
    f.write(str(s.server_address[1]))
os.rename(os.path.join(root, 'port.tmp'), os.path.join(root, 'port'))
s.serve_forever()
)";

// The server above in its own process, killed at the end.
class RegistryServer {
 public:
  RegistryServer() {
    www.write("server.py", kServer);
    set("200", read_file(fixtures_dir() + "/registry/api.json"), "\"a1\"");
    pid_ = fork();
    if (pid_ == 0) {
      execl("/usr/bin/python3", "python3", www.file("server.py").c_str(), www.path().c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && access(www.file("port").c_str(), R_OK) != 0; ++i) usleep(25000);
    port_ = std::atoi(read_file(www.file("port")).c_str());
    EXPECT_GT(port_, 0) << "the test's HTTP server did not start";
  }
  ~RegistryServer() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api.json"; }
  void mode(const std::string& m) const { www.write("mode", m); }
  void set(const std::string& mode_, const std::string& body, const std::string& etag) const {
    www.write("api.json", body);
    www.write("etag", etag);
    mode(mode_);
  }
  std::vector<std::string> requests() const {
    std::vector<std::string> out;
    std::ifstream in(www.file("requests.log"));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  // Waits until more than `n` requests arrived; returns them.
  std::vector<std::string> wait_requests(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    auto r = requests();
    while (r.size() <= n && std::chrono::steady_clock::now() < until) {
      usleep(20000);
      r = requests();
    }
    return r;
  }
  TempDir www;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

// The fixture registry with one more experiment, as a registry update would bring it.
std::string registry_with_new_experiment() {
  auto j = nlohmann::json::parse(read_file(fixtures_dir() + "/registry/api.json"));
  j["experiments"].push_back(
      {{"expName", "flowdtest"},
       {"expId", 300},
       {"activities", nlohmann::json::array({{{"activityName", "probe"}, {"activityId", 5}}})}});
  j["modified"] = "2026-12-01T09:00:00.000000+00:00";
  return j.dump();
}

constexpr const char* kFetchFailures = "flowd_registry_refresh_failures_total{reason=\"fetch\"}";

// Scrapes until `series` is at least `want`; returns the value (or -1).
double wait_metric(const Daemon& d, const std::string& series, double want,
                   std::chrono::milliseconds timeout = 10s) {
  return metric_value(d.scrape_until(series, want, timeout), series).value_or(-1);
}

TEST(RegistryRefresh, NewRegistryReachesComponentsFailuresKeepItAndAHangStopsPromptly) {
  RegistryServer http;
  Daemon d;
  const std::string cfg = d.config(
      "", "flow_map_api = " + http.url() + "\nregistry_refresh = 1s\nflow_map_timeout = 5\n");
  d.start(cfg);
  // The start's download is unconditional (no cache yet); the first refresh asks with the ETag
  // the cache kept, and the server says 304.
  auto req = http.wait_requests(1);
  ASSERT_GE(req.size(), 2u) << d.proc->log();
  EXPECT_EQ(req[0], "GET if-none-match=- if-modified-since=-");
  EXPECT_EQ(req[1], "GET if-none-match=\"a1\" if-modified-since=Tue, 01 Dec 2026 09:00:00 GMT");
  EXPECT_NE(read_file(d.dir.file("cache/api.json.validators")).find("etag \"a1\""),
            std::string::npos);
  std::string m = d.scrape();
  for (const char* reason : {"fetch", "parse", "refused"})
    EXPECT_EQ(metric_value(m, std::string("flowd_registry_refresh_failures_total{reason=\"") +
                                  reason + "\"}"),
              0)
        << reason;
  auto age = metric_value(m, "flowd_registry_age_seconds");
  ASSERT_TRUE(age) << m;
  EXPECT_LT(*age, 3) << "a 304 says the registry in use is current";

  // Not registered yet: np_api refuses the name.
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 flowdtest probe\n");
  EXPECT_EQ(wait_metric(d, "flowd_np_api_rejected_lines_total{reason=\"experiment\"}", 1), 1);
  EXPECT_FALSE(d.rx4.receive(200ms));

  // The registry changes at the source: the running np_api knows the new experiment, no restart.
  const std::string updated = registry_with_new_experiment();
  http.set("200", updated, "\"b2\"");
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = d.proc->log().find("registry refreshed") != std::string::npos;
    if (!seen) usleep(50000);
  }
  ASSERT_TRUE(seen) << d.proc->log();
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 flowdtest probe\n");
  auto f = d.rx4.receive();
  ASSERT_TRUE(f) << d.proc->log();
  auto body = nlohmann::json::parse(f->substr(f->find('{')));
  EXPECT_EQ(body["context"]["experiment-id"], 300) << *f;
  EXPECT_EQ(body["context"]["activity-id"], 5) << *f;
  EXPECT_EQ(read_file(d.dir.file("cache/api.json")), updated);
  EXPECT_NE(read_file(d.dir.file("cache/api.json.validators")).find("etag \"b2\""),
            std::string::npos);

  // 500: counted, the registry in use stays (and ages).
  http.mode("500");
  EXPECT_GE(wait_metric(d, kFetchFailures, 2), 2) << d.proc->log();
  EXPECT_GE(wait_metric(d, "flowd_registry_age_seconds", 2), 2);
  write_pipe(d.pipe(), "end tcp 127.0.0.1 1 127.0.0.1 2 flowdtest probe\n");
  EXPECT_TRUE(d.rx4.receive()) << "still the refreshed registry";

  // Never answering: the refresh gives up after flow_map_timeout and counts it; meanwhile the
  // pipeline runs.
  http.mode("hang");
  http.wait_requests(http.requests().size());  // the refresh that hangs has started
  const auto hang_start = std::chrono::steady_clock::now();
  // Refreshes run one at a time: every earlier one has been counted.
  const double before = metric_value(d.scrape(), kFetchFailures).value_or(0);
  write_pipe(d.pipe(), "start tcp 127.0.0.1 3 127.0.0.1 4 flowdtest probe\n");
  EXPECT_TRUE(d.rx4.receive()) << "the pipeline does not wait for the refresh";
  EXPECT_GE(wait_metric(d, kFetchFailures, before + 1, 10s), before + 1) << d.proc->log();
  EXPECT_GE(std::chrono::steady_clock::now() - hang_start, 4s) << "given up at flow_map_timeout";
  // The next one hangs too; SIGTERM ends flowd well within its 5 s timeout.
  http.wait_requests(http.requests().size());
  usleep(300000);
  const auto t0 = std::chrono::steady_clock::now();
  d.proc->signal(SIGTERM);
  auto rc = d.proc->wait(3s);
  ASSERT_TRUE(rc) << "SIGTERM during a hanging refresh did not stop flowd; log:\n" << d.proc->log();
  EXPECT_EQ(*rc, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);

  // A restart sends the cached copy's validators; the 304 keeps the cached copy.
  http.mode("200");
  const std::size_t n = http.requests().size();
  d.proc = std::make_unique<FlowdProcess>(std::vector<std::string>{"-c", d.config_path},
                                          d.dir.file("flowd2.log"), d.notify->path());
  ASSERT_TRUE(d.notify->wait_for("READY=1")) << d.proc->log();
  req = http.wait_requests(n);
  ASSERT_GT(req.size(), n);
  EXPECT_EQ(req[n], "GET if-none-match=\"b2\" if-modified-since=Tue, 01 Dec 2026 09:00:00 GMT");
  EXPECT_NE(d.proc->log().find("not modified since the cached copy"), std::string::npos)
      << d.proc->log();
  write_pipe(d.pipe(), "start tcp 127.0.0.1 5 127.0.0.1 6 flowdtest probe\n");
  EXPECT_TRUE(d.rx4.receive()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// A registry the configuration cannot use (a rule names an experiment the update dropped) is
// refused like a reload's, counted, and the running one stays.
TEST(RegistryRefresh, ARegistryTheConfigurationRefusesIsCountedAndNotInstalled) {
  RegistryServer http;
  http.set("200", registry_with_new_experiment(), "\"b2\"");
  Daemon d;
  std::string cfg = d.config("", "flow_map_api = " + http.url() + "\nregistry_refresh = 1s\n") +
                    "\n[plugin.netstat]\nrules = 5201 flowdtest probe\n";
  cfg.replace(cfg.find("plugins = np_api"), 16, "plugins = np_api, netstat");
  d.start(cfg);
  // The update drops the experiment the rule names.
  http.set("200", read_file(fixtures_dir() + "/registry/api.json"), "\"a1\"");
  EXPECT_GE(wait_metric(d, "flowd_registry_refresh_failures_total{reason=\"refused\"}", 1), 1)
      << d.proc->log();
  write_pipe(d.pipe(), "start tcp 127.0.0.1 1 127.0.0.1 2 flowdtest probe\n");
  EXPECT_TRUE(d.rx4.receive()) << "the registry in use is kept";
  EXPECT_NE(d.proc->log().find(" s old)"), std::string::npos) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// Issue 14 (found by a fresh user): a refresh that gets something other than JSON keeps the
// registry in use and says how old that registry is, as a failed download does.
TEST(RegistryRefresh, InvalidJsonKeepsTheRegistryAndSaysItsAge) {
  RegistryServer http;
  Daemon d;
  d.start(d.config("", "flow_map_api = " + http.url() + "\nregistry_refresh = 1s\n"));
  http.set("200", "<html>maintenance</html>", "\"m1\"");
  EXPECT_GE(wait_metric(d, "flowd_registry_refresh_failures_total{reason=\"parse\"}", 1), 1)
      << d.proc->log();
  const std::string log = d.proc->log();
  const auto at = log.find("registry refresh: flow_map_api " + http.url());
  ASSERT_NE(at, std::string::npos) << log;
  const std::string line = log.substr(at, log.find('\n', at) - at);
  EXPECT_NE(line.find("still using"), std::string::npos) << line;
  EXPECT_NE(line.find(" s old)"), std::string::npos) << line;
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test

namespace flowd::test {
namespace {

// `flowd flows` against a web server that answers 200 with JSON not shaped as flowd's list (the
// server above answers every path with the body it is given): refused, not printed as a table of
// question marks.
TEST(Cli, FlowsRefusesJsonThatIsNotFlowdsList) {
  RegistryServer server;
  const std::string address = server.url().substr(7, server.url().find("/api.json") - 7);
  for (const char* body : {R"({"flows": "x"})", R"({"flows": [{"src_ip": 5}], "count": "z"})",
                           R"({"flows": [], "count": 0})"}) {
    server.set("200", body, "\"b\"");
    std::string out, err;
    EXPECT_EQ(run_flowd({"flows", "--address", address}, out, err), 1) << body << out;
    EXPECT_NE(err.find("is not flowd's API"), std::string::npos) << body << err;
  }
  server.set("200", R"({"flows": [], "count": 0, "total": 0})", "\"c\"");
  std::string out, err;
  EXPECT_EQ(run_flowd({"flows", "--address", address}, out, err), 0) << err;
  EXPECT_NE(out.find("(0 active flows)"), std::string::npos) << out;
}

}  // namespace
}  // namespace flowd::test
