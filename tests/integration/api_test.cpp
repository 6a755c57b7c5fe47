// SPDX-License-Identifier: Apache-2.0
// The api plugin against the real daemon (issue 14 §2): POST /v1/flows over the unix socket and
// over loopback, good and bad bodies, GET /v1/flows and /v1/status, 100 concurrent clients, slow
// clients that never finish their request, and `flowd status` / `flowd flows`.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "daemon_fixture.hpp"
#include "harness.hpp"
#include "netns_scope.hpp"

namespace flowd::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// A flowd with np_api and the api plugin on a unix socket in the test's directory.
struct ApiDaemon : Daemon {
  std::string socket() const { return dir.file("api.sock"); }
  std::string config_api(const std::string& api_keys = "") const {
    std::string cfg = config();
    cfg.replace(cfg.find("plugins = np_api"), 16, "plugins = np_api, api");
    return cfg + "\n[plugin.api]\nsocket = " + socket() + "\n" + api_keys;
  }
  HttpResult post(const std::string& body, const std::string& path = "/v1/flows") const {
    return http_request("POST", "http://flowd" + path, body, socket());
  }
  HttpResult get(const std::string& path) const {
    return http_request("GET", "http://flowd" + path, "", socket());
  }
};

std::string flow_json(const std::string& state, int src_port, const std::string& tag) {
  return R"({"state": ")" + state + R"(", "protocol": "tcp", "src_ip": "127.0.0.1", "src_port": )" +
         std::to_string(src_port) + R"(, "dst_ip": "127.0.0.1", "dst_port": 5777, )" + tag + "}";
}

json parse(const HttpResult& r) {
  auto j = json::parse(r.body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.status << " " << r.body << r.curl_error;
  return j;
}

// A raw connection to a unix socket, for clients curl would not make (slow, never finishing).
int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A raw connection to 127.0.0.1:port.
int connect_tcp(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    auto n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// One HTTP response as it came on a raw connection; header names lower-case.
struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return "";
  }
};

// Reads responses (Content-Length framed) from `fd` until `want` arrived, the peer closed (`eof`
// set) or `timeout` passed.
std::vector<RawResponse> read_responses(int fd, std::size_t want, bool& eof,
                                        std::chrono::milliseconds timeout = 5s) {
  std::vector<RawResponse> out;
  std::string buf;
  eof = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto parse_one = [&]() -> bool {
    auto end = buf.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    RawResponse r;
    std::size_t length = 0;
    std::size_t line_end = buf.find("\r\n");
    r.status = std::atoi(buf.substr(9, 3).c_str());
    for (std::size_t pos = line_end + 2; pos < end;) {
      auto next = buf.find("\r\n", pos);
      auto line = buf.substr(pos, next - pos);
      auto colon = line.find(':');
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      std::string value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      if (name == "content-length") length = std::stoul(value);
      r.headers.emplace_back(name, value);
      pos = next + 2;
    }
    if (buf.size() < end + 4 + length) return false;
    r.body = buf.substr(end + 4, length);
    buf.erase(0, end + 4 + length);
    out.push_back(std::move(r));
    return true;
  };
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    if (parse_one()) continue;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char chunk[8192];
    auto n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      while (parse_one()) {
      }
      eof = true;
      break;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
  }
  return out;
}

std::string post_request(const std::string& body, const std::string& extra_headers = "") {
  return "POST /v1/flows HTTP/1.1\r\nHost: flowd\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Waits until the peer closes `fd` (read returns 0 or an error); how long it took, or nullopt.
std::optional<std::chrono::milliseconds> wait_closed(int fd, std::chrono::milliseconds timeout) {
  auto t0 = std::chrono::steady_clock::now();
  char buf[4096];
  while (std::chrono::steady_clock::now() - t0 < timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0)
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
  }
  return std::nullopt;
}

TEST(Api, AFlowPostedOnTheUnixSocketBecomesAFireflyAndIsListed) {
  ApiDaemon d;
  d.start(d.config_api("mode = 0660\n"));
  struct stat st {};
  ASSERT_EQ(::lstat(d.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);

  auto r = d.post(flow_json("start", 2345, R"("experiment": "atlas", "activity": 9)"));
  ASSERT_EQ(r.status, 200) << r.body << r.curl_error << d.proc->log();
  EXPECT_EQ(parse(r)["accepted"], 1);
  auto msg = d.rx4.receive();
  ASSERT_TRUE(msg) << d.proc->log();
  auto firefly = json::parse(msg->substr(msg->find('{')));
  EXPECT_EQ(firefly["flow-lifecycle"]["state"], "start");
  EXPECT_EQ(firefly["flow-id"]["src-port"], 2345);
  EXPECT_EQ(firefly["context"]["experiment-id"], 2);
  EXPECT_EQ(firefly["context"]["activity-id"], 9);

  auto flows = parse(d.get("/v1/flows"));
  ASSERT_EQ(flows["flows"].size(), 1u) << flows.dump();
  const auto& f = flows["flows"][0];
  EXPECT_EQ(f["origin"], "local");
  EXPECT_EQ(f["plugin"], "api");
  EXPECT_EQ(f["src_port"], 2345);
  EXPECT_EQ(f["experiment"], 2);
  EXPECT_EQ(f["experiment_name"], "atlas");
  EXPECT_EQ(f["scitag"], 2 << 6 | 9);
  EXPECT_TRUE(f["marked"].is_null()) << "no marker runs here";
  EXPECT_TRUE(f["start"].is_string());

  // A flow from the pipe is listed beside it, and an end removes a flow.
  write_pipe(d.pipe(), "start udp 127.0.0.1 3456 127.0.0.1 5777 2 9\n");
  ASSERT_TRUE(d.rx4.receive());
  EXPECT_EQ(parse(d.get("/v1/flows"))["total"], 2);
  r = d.post(flow_json("end", 2345, R"("experiment": 2, "activity": 9)"));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(d.rx4.receive());
  flows = parse(d.get("/v1/flows"));
  ASSERT_EQ(flows["flows"].size(), 1u) << flows.dump();
  EXPECT_EQ(flows["flows"][0]["plugin"], "np_api");

  // A request is counted once its answer is written: the client may read the answer first.
  d.scrape_until("flowd_api_flows_total", 2);
  d.scrape_until(R"(flowd_api_requests_total{code="2xx",endpoint="flows_post"})", 2);
  auto m = d.scrape_until(R"(flowd_api_requests_total{code="2xx",endpoint="flows_get"})", 3);
  EXPECT_EQ(metric_value(m, "flowd_api_flows_total"), 2);
  EXPECT_EQ(metric_value(m, R"(flowd_api_requests_total{code="2xx",endpoint="flows_post"})"), 2);
  EXPECT_GE(
      metric_value(m, R"(flowd_api_requests_total{code="2xx",endpoint="flows_get"})").value_or(0),
      3);
  EXPECT_EQ(d.stop(), 0);
  EXPECT_NE(::lstat(d.socket().c_str(), &st), 0) << "the socket is removed at stop";
}

TEST(Api, TheScitagIntegerIsExperimentAndActivity) {
  ApiDaemon d;
  d.start(d.config_api());
  // 144 = 2 << 6 | 16: atlas / Production Output, as FTS --scitag 144 says it.
  auto r = d.post("[" + flow_json("start", 2001, R"("scitag": 144)") + "]");
  ASSERT_EQ(r.status, 200) << r.body;
  auto msg = d.rx4.receive();
  ASSERT_TRUE(msg) << d.proc->log();
  auto firefly = json::parse(msg->substr(msg->find('{')));
  EXPECT_EQ(firefly["context"]["experiment-id"], 2);
  EXPECT_EQ(firefly["context"]["activity-id"], 16);
  EXPECT_EQ(d.stop(), 0);
}

TEST(Api, BadBodiesAreRefusedWithTheirReasonAndCounted) {
  ApiDaemon d;
  d.start(d.config_api("max_body = 1024\nmax_flows = 2\n"));
  struct Case {
    std::string body;
    long status;
    std::string reason;
  } cases[] = {
      {"start tcp 127.0.0.1 1 127.0.0.1 2 2 9", 400, "json"},
      {"{\"state\": \"start\"", 400, "json"},
      {"[" + flow_json("start", 1, R"("scitag": 1)") + "," +
           flow_json("start", 2, R"("scitag": 1)") + "," + flow_json("start", 3, R"("scitag": 1)") +
           "]",
       413, "too_many"},
      {"[" + std::string(2000, ' ') + "]", 413, "too_large"},
  };
  for (const auto& c : cases) {
    auto r = d.post(c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80) << " -> " << r.body;
    EXPECT_EQ(parse(r)["reason"], c.reason) << r.body;
  }
  // Flows refused one by one: the good one of the body is still published.
  auto r = d.post("[" + flow_json("start", 4000, R"("experiment": 2, "activity": 9)") + "," +
                  flow_json("start", 70000, R"("experiment": 2, "activity": 9)") + "]");
  EXPECT_EQ(r.status, 422) << r.body;
  auto j = parse(r);
  EXPECT_EQ(j["accepted"], 1);
  ASSERT_EQ(j["rejected"].size(), 1u);
  EXPECT_EQ(j["rejected"][0]["index"], 1);
  EXPECT_EQ(j["rejected"][0]["reason"], "port");
  EXPECT_TRUE(d.rx4.receive()) << "the good flow of a partly bad body goes out";
  r = d.post(flow_json("start", 4001, R"("experiment": "nosuch", "activity": 9)"));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(parse(r)["rejected"][0]["reason"], "experiment");
  // The same bad port on the pipe is refused for the same reason, in np_api's own counter.
  write_pipe(d.pipe(), "start tcp 127.0.0.1 70000 127.0.0.1 5777 2 9\n");
  EXPECT_EQ(d.get("/v1/nothing").status, 404);
  EXPECT_EQ(http_request("DELETE", "http://flowd/v1/flows", "", d.socket()).status, 405);

  // Requests are counted once answered, the last ones maybe after the client read the answer.
  d.scrape_until(R"(flowd_api_requests_total{code="4xx",endpoint="other"})", 2);
  d.scrape_until(R"(flowd_api_requests_total{code="4xx",endpoint="flows_post"})", 6);
  auto m = d.scrape_until(R"(flowd_np_api_rejected_lines_total{reason="port"})", 1);
  EXPECT_EQ(metric_value(m, R"(flowd_np_api_rejected_lines_total{reason="port"})"), 1);
  EXPECT_EQ(metric_value(m, R"(flowd_api_rejected_flows_total{reason="port"})"), 1);
  EXPECT_EQ(metric_value(m, R"(flowd_api_rejected_flows_total{reason="json"})"), 2);
  EXPECT_EQ(metric_value(m, R"(flowd_api_rejected_flows_total{reason="too_many"})"), 1);
  EXPECT_EQ(metric_value(m, R"(flowd_api_rejected_flows_total{reason="too_large"})"), 1);
  EXPECT_EQ(metric_value(m, R"(flowd_api_rejected_flows_total{reason="experiment"})"), 1);
  EXPECT_EQ(metric_value(m, R"(flowd_api_rejected_flows_total{reason="scitag"})"), 0);
  EXPECT_EQ(metric_value(m, R"(flowd_api_requests_total{code="4xx",endpoint="flows_post"})"), 6);
  EXPECT_EQ(metric_value(m, R"(flowd_api_requests_total{code="4xx",endpoint="other"})"), 2);
  EXPECT_TRUE(d.proc->running()) << d.proc->log();
  EXPECT_EQ(d.stop(), 0);
}

// curl -d sends its body as a form (application/x-www-form-urlencoded), which the HTTP library caps
// at 8192 bytes whatever max_body says: the refusal must name that limit and the way out, and the
// same body sent as JSON must pass.
TEST(Api, ABigBodySentAsAFormSaysToSendJson) {
  ApiDaemon d;
  d.start(d.config_api());
  std::string body = "[";
  for (int i = 0; i < 100; ++i)
    body += (i ? "," : "") + flow_json("start", 30000 + i, R"("scitag": 137)");
  body += "]";
  ASSERT_GT(body.size(), 8192u);
  d.dir.write("flows.json", body);
  const std::string curl = "curl -s --unix-socket " + d.socket() + " --data-binary @" +
                           d.dir.file("flows.json") + " -w ' %{http_code}' ";
  std::string out;
  ASSERT_EQ(run_shell(curl + "http://flowd/v1/flows", "", out), 0) << out;
  EXPECT_NE(out.find(" 413"), std::string::npos) << out;
  EXPECT_NE(out.find("Content-Type: application/json"), std::string::npos) << out;
  ASSERT_EQ(run_shell(curl + "-H 'Content-Type: application/json' http://flowd/v1/flows", "", out),
            0)
      << out;
  EXPECT_NE(out.find("\"accepted\": 100"), std::string::npos) << out;
  EXPECT_NE(out.find(" 200"), std::string::npos) << out;
}

TEST(Api, LoopbackAddressWorksAndOthersNeedPublic) {
  ApiDaemon d;
  int port = free_tcp_port();
  std::string cfg = d.config_api("listen = 127.0.0.1:" + std::to_string(port) + "\n");
  cfg.replace(cfg.find("socket = "), std::string("socket = " + d.socket()).size(), "socket =");
  d.start(cfg);
  auto url = "http://127.0.0.1:" + std::to_string(port);
  auto r = http_request("POST", url + "/v1/flows",
                        flow_json("start", 2500, R"("experiment": 2, "activity": 9)"));
  ASSERT_EQ(r.status, 200) << r.body << r.curl_error << d.proc->log();
  EXPECT_TRUE(d.rx4.receive());
  EXPECT_EQ(http_request("GET", url + "/v1/status").status, 200);
  struct stat st {};
  EXPECT_NE(::lstat(d.socket().c_str(), &st), 0) << "socket = (empty) makes no unix socket";
  EXPECT_EQ(d.stop(), 0);

  // Not loopback: refused unless public = yes.
  ApiDaemon e;
  e.dir.write("pub.cfg", e.config_api("listen = 0.0.0.0:" + std::to_string(port) + "\n"));
  std::string out, err;
  EXPECT_EQ(run_flowd({"--check-config", "-c", e.dir.file("pub.cfg")}, out, err), 2);
  EXPECT_NE(err.find("is not a loopback address"), std::string::npos) << err;
  e.dir.write("pub2.cfg",
              e.config_api("listen = 0.0.0.0:" + std::to_string(port) + "\npublic = yes\n"));
  EXPECT_EQ(run_flowd({"--check-config", "-c", e.dir.file("pub2.cfg")}, out, err), 0) << err;
}

TEST(Api, AHundredConcurrentClientsAreAllServed) {
  ApiDaemon d;
  d.start(d.config_api());
  constexpr int kClients = 100;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      auto r = d.post(flow_json("start", 10000 + i, R"("scitag": 137)"));
      if (r.status == 200) ++ok;
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients) << d.proc->log();
  auto got = d.rx4.receive_many(kClients);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(kClients));
  auto flows = parse(d.get("/v1/flows?limit=1000"));
  EXPECT_EQ(flows["total"], kClients);
  EXPECT_EQ(d.stop(), 0);
}

TEST(Api, SlowClientsThatNeverFinishDoNotStopOthers) {
  ApiDaemon d;
  d.start(d.config_api("threads = 2\nrequest_timeout = 1500ms\ntimeout = 1s\n"));
  // One client sends half a request and then nothing; another trickles a byte every 200 ms: each
  // holds one of the two workers, but only until request_timeout.
  int stalled = connect_unix(d.socket());
  ASSERT_GE(stalled, 0);
  std::string head = "POST /v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{";
  ASSERT_GT(::send(stalled, head.data(), head.size(), MSG_NOSIGNAL), 0);
  int trickle = connect_unix(d.socket());
  ASSERT_GE(trickle, 0);
  std::atomic<bool> trickling{true};
  std::thread trickler([&] {
    const std::string req = "GET /v1/status HTTP/1.1\r\nX-Slow: " + std::string(200, 'a');
    for (char c : req) {
      if (!trickling || ::send(trickle, &c, 1, MSG_NOSIGNAL) <= 0) return;
      std::this_thread::sleep_for(200ms);
    }
  });
  std::this_thread::sleep_for(200ms);
  // Others are served meanwhile: at worst after the slow ones' deadline freed a worker.
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    auto r = d.post(flow_json("start", 20000 + i, R"("scitag": 137)"));
    EXPECT_EQ(r.status, 200) << r.curl_error;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  // flowd closes both slow connections at request_timeout (1.5 s), not later.
  auto closed = wait_closed(stalled, 5s);
  ASSERT_TRUE(closed) << "flowd kept a request that never finishes open";
  auto closed2 = wait_closed(trickle, 5s);
  ASSERT_TRUE(closed2) << "flowd kept a trickling request open past request_timeout";
  trickling = false;
  trickler.join();
  ::close(stalled);
  ::close(trickle);
  EXPECT_EQ(d.rx4.receive_many(5).size(), 5u);
  EXPECT_EQ(d.get("/v1/status").status, 200);
  EXPECT_EQ(d.stop(), 0) << "a stop ends the connections it serves at once";
}

// Issue 14 (found by a fresh user): one pool served both listeners, so more stalled TCP clients
// than `threads` made unix-socket clients wait up to request_timeout. Each listener has its own.
TEST(Api, StalledTcpClientsDoNotDelayTheUnixSocket) {
  ApiDaemon d;
  const int port = free_tcp_port();
  d.start(d.config_api("listen = 127.0.0.1:" + std::to_string(port) +
                       "\nthreads = 2\nqueue = 4\nrequest_timeout = 8s\ntimeout = 8s\n"));
  // threads + 1 TCP clients that send half a request and then nothing: both TCP workers are held
  // and one more connection waits in the TCP queue.
  std::vector<int> stalled;
  for (int i = 0; i < 3; ++i) {
    int fd = connect_tcp(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(fd, "POST /v1/flows HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"));
    stalled.push_back(fd);
  }
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = d.get("/v1/status");
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.status, 200) << r.curl_error;
    EXPECT_LT(took, 1s) << "a unix-socket client waited for the stalled TCP clients";
  }
  auto r = d.post(flow_json("start", 2700, R"("scitag": 137)"));
  EXPECT_EQ(r.status, 200) << r.curl_error;
  EXPECT_TRUE(d.rx4.receive());
  for (int fd : stalled) ::close(fd);
  EXPECT_EQ(d.stop(), 0);
}

bool listed(const ApiDaemon& d, int src_port) {
  auto flows = parse(d.get("/v1/flows"));
  for (const auto& f : flows["flows"])
    if (f["src_port"] == src_port) return true;
  return false;
}

// Issue 14: pipelined requests (several in one write) are each answered, in order; a request sent
// behind one that ends the connection (Connection: close, keep_alive_max) is never executed, so a
// client that retries it does not start a flow twice.
// RFC 9112 §6: a body with no length is empty (answered at once, not after the read timeout), and a
// request whose length is ambiguous is refused and the connection ended, so a request hidden in
// its body is never executed.
TEST(Api, BodyLengthsFollowRfc9112AndAmbiguousOnesEndTheConnection) {
  ApiDaemon d;
  d.start(d.config_api("timeout = 5s\n"));
  auto exchange = [&](const std::string& bytes, std::size_t want, bool& eof) {
    int fd = connect_unix(d.socket());
    EXPECT_GE(fd, 0);
    EXPECT_TRUE(send_all(fd, bytes));
    auto got = read_responses(fd, want, eof);
    ::close(fd);
    return got;
  };
  bool eof = false;
  const auto t0 = std::chrono::steady_clock::now();
  auto got = exchange("POST /v1/flows HTTP/1.1\r\nHost: flowd\r\n\r\n", 1, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 400);
  EXPECT_EQ(json::parse(got[0].body)["reason"], "json") << got[0].body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "answered at once, not after timeout";
  got = exchange("PUT /v1/status HTTP/1.1\r\nHost: flowd\r\n\r\n", 1, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 405);

  const std::string smuggled = post_request(flow_json("start", 42001, R"("scitag": 137)"));
  got = exchange(
      "POST /v1/flows HTTP/1.1\r\nHost: flowd\r\nContent-Length: 2\r\nContent-Length: "
      "40\r\n\r\n{}" +
          smuggled,
      2, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(eof);
  EXPECT_EQ(got[0].status, 400);
  EXPECT_NE(got[0].body.find("Content-Length"), std::string::npos) << got[0].body;
  EXPECT_EQ(got[0].header("connection"), "close");
  got = exchange(
      "POST /v1/flows HTTP/1.1\r\nHost: flowd\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0\r\n\r\n" +
          smuggled,
      2, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 400);
  EXPECT_NE(got[0].body.find("Transfer-Encoding"), std::string::npos) << got[0].body;
  EXPECT_FALSE(listed(d, 42001)) << "the request in the body was not executed";
  EXPECT_EQ(d.stop(), 0);
}

TEST(Api, PipelinedRequestsAreAnsweredInOrderAndNoneIsExecutedUnanswered) {
  ApiDaemon d;
  d.start(d.config_api("keep_alive_max = 3\n"));
  auto tag = R"("scitag": 137)";

  int fd = connect_unix(d.socket());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, post_request(flow_json("start", 41000, tag)) +
                               "GET /v1/flows HTTP/1.1\r\nHost: flowd\r\n\r\n" +
                               post_request(flow_json("start", 41001, tag))));
  bool eof = false;
  auto got = read_responses(fd, 3, eof);
  ASSERT_EQ(got.size(), 3u) << "eof " << eof << d.proc->log();
  EXPECT_EQ(got[0].status, 200);
  EXPECT_EQ(json::parse(got[0].body)["accepted"], 1);
  EXPECT_EQ(got[1].status, 200);
  // The list was made between the two POSTs: the first flow in it, the second not yet.
  auto body = got[1].body;
  EXPECT_NE(body.find("41000"), std::string::npos) << body;
  EXPECT_EQ(body.find("41001"), std::string::npos) << body;
  EXPECT_EQ(got[2].status, 200);
  EXPECT_EQ(got[2].header("connection"), "close") << "the third of keep_alive_max = 3";
  ::close(fd);
  EXPECT_TRUE(listed(d, 41001));

  // A request behind "Connection: close" is not executed.
  fd = connect_unix(d.socket());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, post_request(flow_json("start", 41002, tag), "Connection: close\r\n") +
                               post_request(flow_json("start", 41003, tag))));
  got = read_responses(fd, 2, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(eof);
  EXPECT_EQ(got[0].status, 200);
  EXPECT_EQ(got[0].header("connection"), "close");
  ::close(fd);

  // Nor is a fourth request behind keep_alive_max = 3.
  fd = connect_unix(d.socket());
  ASSERT_GE(fd, 0);
  std::string four;
  for (int p = 41004; p < 41008; ++p) four += post_request(flow_json("start", p, tag));
  ASSERT_TRUE(send_all(fd, four));
  got = read_responses(fd, 4, eof);
  EXPECT_EQ(got.size(), 3u);
  EXPECT_TRUE(eof);
  ::close(fd);

  EXPECT_TRUE(listed(d, 41002));
  EXPECT_FALSE(listed(d, 41003)) << "executed although its answer was never sent";
  EXPECT_TRUE(listed(d, 41006));
  EXPECT_FALSE(listed(d, 41007)) << "executed although its answer was never sent";
  EXPECT_EQ(d.stop(), 0);
}

// RFC 9112 §9.3: Connection tokens are case-insensitive; an HTTP/1.0 client keeps the connection
// with "keep-alive" (and is told so), else it is closed; "Close" on HTTP/1.1 closes.
TEST(Api, ConnectionHeaderAsRfc9112Says) {
  ApiDaemon d;
  d.start(d.config_api());
  int fd = connect_unix(d.socket());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /v1/status HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  bool eof = false;
  auto got = read_responses(fd, 1, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].status, 200);
  EXPECT_EQ(got[0].header("connection"), "keep-alive");
  // Still open: a second request on it, HTTP/1.0 without keep-alive, is answered and closes it.
  ASSERT_TRUE(send_all(fd, "GET /v1/status HTTP/1.0\r\n\r\n"));
  got = read_responses(fd, 2, eof);
  ASSERT_EQ(got.size(), 1u) << "the keep-alive connection was closed";
  EXPECT_EQ(got[0].header("connection"), "close");
  EXPECT_TRUE(eof);
  ::close(fd);

  fd = connect_unix(d.socket());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n"));
  got = read_responses(fd, 2, eof);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header("connection"), "close");
  EXPECT_TRUE(eof);
  ::close(fd);
  EXPECT_EQ(d.stop(), 0);
}

// Issue 14: a method a known path does not take is 405 with Allow (not 404), and the refusals
// of a body name the field at fault.
TEST(Api, WrongMethodsAre405AndRefusalsNameTheField) {
  ApiDaemon d;
  d.start(d.config_api());
  struct Case {
    std::string method, path, allow;
  } cases[] = {{"DELETE", "/v1/flows", "GET, HEAD, POST"},
               {"OPTIONS", "/v1/flows", "GET, HEAD, POST"},
               {"PUT", "/v1/status", "GET, HEAD"},
               {"POST", "/v1/status", "GET, HEAD"}};
  for (const auto& c : cases) {
    int fd = connect_unix(d.socket());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(send_all(
        fd, c.method + " " + c.path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    bool eof = false;
    auto got = read_responses(fd, 1, eof);
    ::close(fd);
    ASSERT_EQ(got.size(), 1u) << c.method;
    EXPECT_EQ(got[0].status, 405) << c.method << " " << c.path;
    EXPECT_EQ(got[0].header("allow"), c.allow) << c.method << " " << c.path;
  }
  EXPECT_EQ(d.get("/v1/nothing").status, 404);

  // A port beyond 64 bits is the port's fault, not the body's.
  auto r = d.post(
      R"({"state": "start", "protocol": "tcp", "src_ip": "127.0.0.1", "src_port": 99999999999999999999, "dst_ip": "127.0.0.1", "dst_port": 5777, "scitag": 137})");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(parse(r)["rejected"][0]["reason"], "port") << r.body;
  // An unknown key beside "flows" is named.
  r = d.post(R"({"flows": [], "extra": 1})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(parse(r)["error"].get<std::string>().find("'extra'"), std::string::npos) << r.body;
  // scitag is an integer, as the transfer tools carry it.
  r = d.post(flow_json("start", 2800, R"("scitag": "144")"));
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(parse(r)["rejected"][0]["reason"], "scitag") << r.body;
  EXPECT_FALSE(d.rx4.receive(300ms));
  EXPECT_EQ(d.stop(), 0);
}

TEST(Api, AStaleSocketOfAKilledFlowdIsReplacedAndALiveOneRefused) {
  ApiDaemon d;
  d.start(d.config_api());
  d.proc->signal(SIGKILL);
  d.proc->wait(5s);
  struct stat st {};
  ASSERT_EQ(::lstat(d.socket().c_str(), &st), 0) << "kill -9 leaves the socket";
  d.notify.reset();         // the old one's destructor would remove the new one's path
  d.start(d.config_api());  // the stale socket is replaced
  EXPECT_EQ(d.get("/v1/status").status, 200);
  // A second flowd with the same socket path is refused, the first keeps serving.
  std::string cfg2 = d.config_api();
  cfg2.replace(cfg2.find(d.pipe()), d.pipe().size(), d.dir.file("other.np"));
  const std::string prom = "listen = 127.0.0.1:" + std::to_string(d.prom_port);
  cfg2.replace(cfg2.find(prom), prom.size(),
               "listen = 127.0.0.1:" + std::to_string(free_tcp_port()));
  d.dir.write("second.cfg", cfg2);
  FlowdProcess second({"-c", d.dir.file("second.cfg")}, d.dir.file("second.log"));
  EXPECT_EQ(second.wait(10s), 1);
  EXPECT_NE(second.log().find("listens on " + d.socket()), std::string::npos) << second.log();
  EXPECT_EQ(d.get("/v1/status").status, 200);
  EXPECT_EQ(d.stop(), 0);
}

TEST(Api, AFileAtTheSocketPathIsRefusedAndKept) {
  ApiDaemon d;
  d.dir.write("api.sock", "not a socket\n");
  d.dir.write("flowd.cfg", d.config_api());
  FlowdProcess p({"-c", d.dir.file("flowd.cfg")}, d.dir.file("log"));
  EXPECT_EQ(p.wait(10s), 1);
  EXPECT_NE(p.log().find("is a regular file"), std::string::npos) << p.log();
  EXPECT_EQ(read_file(d.socket()), "not a socket\n");
}

TEST(Api, StatusAndFlowsCommands) {
  ApiDaemon d;
  d.start(d.config_api());
  ASSERT_EQ(d.post(flow_json("start", 2600, R"("experiment": "atlas", "activity": 9)")).status,
            200);
  ASSERT_TRUE(d.rx4.receive());

  std::string out, err;
  ASSERT_EQ(run_flowd({"status", "-c", d.config_path}, out, err), 0) << err;
  EXPECT_NE(out.find("running since"), std::string::npos) << out;
  EXPECT_NE(out.find("np_api, api"), std::string::npos) << out;
  EXPECT_NE(out.find("udp_firefly"), std::string::npos) << out;
  EXPECT_NE(out.find("registry:"), std::string::npos) << out;
  EXPECT_NE(out.find("1 active"), std::string::npos) << out;
  EXPECT_NE(out.find("marker:     not running"), std::string::npos) << out;

  ASSERT_EQ(run_flowd({"status", "--json", "-c", d.config_path}, out, err), 0) << err;
  auto s = json::parse(out);
  EXPECT_EQ(s["active_flows"]["count"], 1);
  EXPECT_EQ(s["registry"]["experiments"].get<int>() > 0, true);
  EXPECT_GE(s["registry"]["age_seconds"].get<int>(), 0);
  bool queue_seen = false;
  for (const auto& c : s["components"])
    if (c["name"] == "udp_firefly") {
      queue_seen = true;
      EXPECT_EQ(c["kind"], "backend");
      EXPECT_EQ(c["queue_capacity"], 65536);
      EXPECT_EQ(c["dropped"], 0);
    }
  EXPECT_TRUE(queue_seen) << s.dump();

  ASSERT_EQ(run_flowd({"flows", "-c", d.config_path}, out, err), 0) << err;
  EXPECT_NE(out.find("ORIGIN"), std::string::npos) << out;
  EXPECT_NE(out.find("127.0.0.1:2600"), std::string::npos) << out;
  EXPECT_NE(out.find("atlas/"), std::string::npos) << out;
  EXPECT_NE(out.find("(1 active flow)"), std::string::npos) << out;
  EXPECT_EQ(d.stop(), 0);

  // Not running: a clear message and exit 1.
  EXPECT_EQ(run_flowd({"status", "-c", d.config_path}, out, err), 1);
  EXPECT_EQ(err.rfind("flowd is not running", 0), 0u) << "not 'flowd: flowd is ...': " << err;
  EXPECT_NE(err.find(d.socket()), std::string::npos) << err;
  EXPECT_EQ(run_flowd({"flows", "--socket", d.dir.file("none.sock")}, out, err), 1);
  EXPECT_NE(err.find("flowd is not running"), std::string::npos) << err;
  EXPECT_EQ(
      run_flowd({"status", "--address", "127.0.0.1:" + std::to_string(free_tcp_port())}, out, err),
      1);
  EXPECT_NE(err.find("flowd is not running"), std::string::npos) << err;
}

// issue 15 E6: a tool that posted a flow's start and died without its end left the flow active
// for ever. The api checks its TCP flows against the kernel's sockets every check_interval and
// ends the one whose connection closed (GET /v1/flows no longer lists it; an end firefly goes out).
TEST(Api, AFlowWhoseConnectionClosedWithoutItsEndIsEndedByTheCheck) {
  ApiDaemon d;
  d.start(d.config_api("check_interval = 1s\n"));
  int server = tcp_listen("127.0.0.1", 0);
  ASSERT_GE(server, 0);
  sockaddr_in sa{};
  socklen_t sl = sizeof sa;
  ASSERT_EQ(::getsockname(server, reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  const int server_port = ntohs(sa.sin_port);
  int client_port = 0;
  int client = tcp_connect("127.0.0.1", server_port, &client_port);
  ASSERT_GE(client, 0);
  int peer = ::accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  const std::string body =
      R"({"state": "start", "protocol": "tcp", "src_ip": "127.0.0.1", "src_port": )" +
      std::to_string(client_port) + R"(, "dst_ip": "127.0.0.1", "dst_port": )" +
      std::to_string(server_port) + R"(, "scitag": 137})";
  auto r = d.post(body);
  ASSERT_EQ(r.status, 200) << r.body << r.curl_error << d.proc->log();
  ASSERT_TRUE(d.rx4.receive()) << d.proc->log();
  const std::string checks = R"(flowd_explicit_flow_checks_total{plugin="api"})";
  d.scrape_until(checks, 2, 5s);
  EXPECT_EQ(parse(d.get("/v1/flows"))["total"], 1) << "an open connection is not ended";
  for (int fd : {client, peer, server}) ::close(fd);
  auto end = d.rx4.receive(3s);
  ASSERT_TRUE(end) << "no end firefly within 3 s of the close\n" << d.proc->log();
  auto firefly = json::parse(end->substr(end->find('{')));
  EXPECT_EQ(firefly["flow-lifecycle"]["state"], "end");
  EXPECT_EQ(firefly["flow-id"]["src-port"], client_port);
  EXPECT_EQ(parse(d.get("/v1/flows"))["total"], 0);
  const std::string expired =
      R"(flowd_explicit_flows_expired_total{plugin="api",reason="connection_closed"})";
  auto m = d.scrape_until(expired, 1);
  EXPECT_EQ(metric_value(m, expired), 1) << m;
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
}  // namespace flowd::test
