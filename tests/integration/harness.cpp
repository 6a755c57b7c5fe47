// SPDX-License-Identifier: Apache-2.0
#include "harness.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include <gtest/gtest.h>

extern char** environ;

namespace flowd::test {

namespace {
[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}
}  // namespace

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "flowd-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) fail("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void TempDir::write(const std::string& name, const std::string& content) const {
  std::ofstream out(file(name), std::ios::binary | std::ios::trunc);
  out << content;
}

Bpffs::Bpffs(const std::string& dir) : path(dir) {
  std::string out;
  ok = ::mkdir(path.c_str(), 0700) == 0 && run_shell("mount -t bpf bpf " + path, "", out) == 0;
}

Bpffs::~Bpffs() {
  std::string out;
  if (ok) run_shell("umount " + path, "", out);
}

UdpReceiver::UdpReceiver(bool ipv6, int port, const std::string& address) {
  fd_ = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("socket");
  // Root may exceed net.core.rmem_max; bursts of thousands of fireflies need it.
  int big = 64 << 20;
  big_buffer_ = setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) == 0;
  if (!big_buffer_) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  sockaddr_storage ss{};
  socklen_t len;
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    if (!address.empty() && inet_pton(AF_INET6, address.c_str(), &a->sin6_addr) != 1)
      fail("address " + address);
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!address.empty() && inet_pton(AF_INET, address.c_str(), &a->sin_addr) != 1)
      fail("address " + address);
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *a;
  }
  if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) fail("bind");
  getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

UdpReceiver::~UdpReceiver() {
  close(fd_);
}

std::optional<std::string> UdpReceiver::receive(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
  std::string buf(65536, '\0');
  ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
  if (n < 0) return std::nullopt;
  buf.resize(static_cast<std::size_t>(n));
  return buf;
}

std::vector<std::string> UdpReceiver::receive_many(std::size_t count,
                                                   std::chrono::milliseconds idle) {
  std::vector<std::string> out;
  while (out.size() < count) {
    auto m = receive(idle);
    if (!m) break;
    out.push_back(std::move(*m));
  }
  return out;
}

NotifySocket::NotifySocket(const std::string& path) : path_(path) {
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("socket(AF_UNIX)");
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  unlink(path.c_str());
  if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind " + path);
  reader_ = std::jthread([this](std::stop_token stop) {
    while (!stop.stop_requested()) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;  // 50 ms: how soon the destructor's stop is seen
      char buf[4096];
      ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) continue;
      std::lock_guard lock(mu_);
      messages_.emplace_back(buf, static_cast<std::size_t>(n));
      arrived_.notify_all();
    }
  });
}

NotifySocket::~NotifySocket() {
  reader_ = {};  // stops and joins before the descriptor goes
  close(fd_);
  unlink(path_.c_str());
}

std::optional<std::string> NotifySocket::wait_for(const std::string& needle,
                                                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  while (true) {
    while (!messages_.empty()) {
      std::string msg = std::move(messages_.front());
      messages_.pop_front();
      if (msg.find(needle) != std::string::npos) return msg;
    }
    if (arrived_.wait_until(lock, deadline) == std::cv_status::timeout && messages_.empty())
      return std::nullopt;
  }
}

FlowdProcess::FlowdProcess(const std::vector<std::string>& args, const std::string& log_path,
                           const std::string& notify_socket,
                           const std::vector<std::string>& extra_env,
                           const std::vector<std::string>& prefix)
    : log_path_(log_path) {
  std::vector<std::string> argv_s = prefix;
  argv_s.push_back(flowd_binary());
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0 && std::strncmp(*e, "JOURNAL_STREAM=", 15) != 0)
      env_s.emplace_back(*e);
  if (!notify_socket.empty()) env_s.push_back("NOTIFY_SOCKET=" + notify_socket);
  env_s.insert(env_s.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    errno = rc;
    fail("posix_spawn " + argv_s[0]);
  }
}

FlowdProcess::~FlowdProcess() {
  if (!status_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    int st;
    waitpid(pid_, &st, 0);
  }
}

void FlowdProcess::signal(int sig) const {
  kill(pid_, sig);
}

std::optional<int> FlowdProcess::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  // A pidfd becomes readable when the process exits: no polling loop.
  int pfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  if (pfd < 0) fail("pidfd_open");
  pollfd p{pfd, POLLIN, 0};
  int n = poll(&p, 1, static_cast<int>(timeout.count()));
  close(pfd);
  if (n <= 0) return std::nullopt;
  int st = 0;
  if (waitpid(pid_, &st, 0) != pid_) fail("waitpid");
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return status_;
}

bool FlowdProcess::running() {
  if (status_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

std::string FlowdProcess::log() const {
  return read_file(log_path_);
}

NetnsPair::NetnsPair() {
  static int serial = 0;
  int n = ++serial;
  std::string tag = std::to_string(getpid() % 100000) + "x" + std::to_string(n);
  a = "flowdt" + tag + "a";
  b = "flowdt" + tag + "b";
  veth_a = "vfa" + tag;
  veth_b = "vfb" + tag;
  std::string net = "fd00:f10d:" + std::to_string(n) + "::";
  addr_a = net + "1";
  addr_b = net + "2";
  std::string out;
  std::string cmd = "set -e; ip netns add " + a + "; ip netns add " + b + "; ip link add " +
                    veth_a + " type veth peer name " + veth_b + "; ip link set " + veth_a +
                    " netns " + a + "; ip link set " + veth_b + " netns " + b + "; ip -n " + a +
                    " addr add " + addr_a + "/64 dev " + veth_a + " nodad; ip -n " + b +
                    " addr add " + addr_b + "/64 dev " + veth_b + " nodad; for ns in " + a + " " +
                    b + "; do ip -n $ns link set lo up; done; ip -n " + a + " link set " + veth_a +
                    " up; ip -n " + b + " link set " + veth_b + " up";
  if (run_shell(cmd, "", out) != 0)
    throw std::runtime_error("cannot create network namespaces: " + out);
}

NetnsPair::~NetnsPair() {
  std::string out;
  run_shell("ip netns del " + a + "; ip netns del " + b, "", out);
}

int NetnsPair::exec(const std::string& ns, const std::string& cmd, std::string& out) const {
  std::string quoted;
  for (char c : cmd) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return run_shell("ip netns exec " + ns + " sh -c '" + quoted + "'", "", out);
}

int run_shell(const std::string& cmd, const std::string& input, std::string& out) {
  TempDir d;
  d.write("in", input);
  std::string full = "( " + cmd + " ) < " + d.file("in") + " > " + d.file("out") + " 2>&1";
  int st = std::system(full.c_str());
  out = read_file(d.file("out"));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int run_flowd(const std::vector<std::string>& args, std::string& out, std::string& err) {
  TempDir d;
  std::string cmd = flowd_binary();
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " > " + d.file("out") + " 2> " + d.file("err") + " < /dev/null";
  int st = std::system(cmd.c_str());
  out = read_file(d.file("out"));
  err = read_file(d.file("err"));
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

std::string flowd_binary() {
  return FLOWD_BINARY;
}
std::string fixtures_dir() {
  return FLOWD_FIXTURES;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int free_tcp_port() {
  return free_port(SOCK_STREAM);
}
int free_udp_port() {
  return free_port(SOCK_DGRAM);
}

Tcpdump::Tcpdump(const std::string& ns, const std::string& iface, const std::string& filter,
                 const std::string& pcap) {
  const std::string log = pcap + ".log";
  // A capture started again on the same file must not take the last one's "listening on" for its
  // own (the shell truncates the log in the background).
  ::unlink(log.c_str());
  std::string out;
  run_shell("ip netns exec " + ns + " tcpdump --immediate-mode -i " + iface + " -U -w " + pcap +
                " '" + filter + "' > " + log + " 2>&1 & echo $!",
            "", out);
  pid_ = std::stoi(out);
  for (int i = 0; i < 300 && read_file(log).find("listening on") == std::string::npos; ++i)
    usleep(10000);
}

void Tcpdump::stop() {
  if (pid_ < 0) return;
  usleep(200000);  // let the last packets reach the capture
  kill(pid_, SIGINT);
  std::string out;
  run_shell("while kill -0 " + std::to_string(pid_) + " 2>/dev/null; do sleep 0.05; done", "", out);
  pid_ = -1;
}

std::vector<std::string> capture_payloads(const std::string& pcap, int ip_protocol) {
  const std::string f = read_file(pcap);
  std::vector<std::string> out;
  auto u8 = [&](std::size_t o) { return static_cast<std::uint8_t>(f[o]); };
  auto le32 = [&](std::size_t o) {
    return std::uint32_t{u8(o)} | std::uint32_t{u8(o + 1)} << 8 | std::uint32_t{u8(o + 2)} << 16 |
           std::uint32_t{u8(o + 3)} << 24;
  };
  if (f.size() < 24 || le32(0) != 0xa1b2c3d4 || le32(20) != 1)
    throw std::runtime_error(pcap + ": not a little-endian Ethernet pcap");
  for (std::size_t off = 24; f.size() - off >= 16;) {
    const std::size_t caplen = le32(off + 8);
    const std::size_t frame = off + 16;
    off = frame + caplen;
    if (off > f.size() || caplen < 14 + 20 + 8 || u8(frame + 12) != 0x08 || u8(frame + 13) != 0x00)
      continue;
    const std::size_t ip = frame + 14;
    const std::size_t ihl = (u8(ip) & 0x0F) * 4u;
    const std::size_t total = std::size_t{u8(ip + 2)} << 8 | u8(ip + 3);
    if (u8(ip + 9) != ip_protocol) continue;
    const std::size_t l4 = ip + ihl;
    const std::size_t data = ip_protocol == 6 ? l4 + (u8(l4 + 12) >> 4) * 4u : l4 + 8;
    const std::size_t end = ip + total;
    if (data < end && end <= off) out.emplace_back(f.substr(data, end - data));
  }
  return out;
}

void send_from_exporters(int port, const std::string& payload, int n) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fds.push_back(fd);
  }
  for (int fd : fds) close(fd);
}

void send_udp_payloads(int port, const std::vector<std::string>& payloads) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  for (const auto& p : payloads)
    sendto(fd, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
  close(fd);
}

LoopbackExporter::LoopbackExporter(int host) : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(0x7F000000u | static_cast<std::uint32_t>(host));
  EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
}

LoopbackExporter::~LoopbackExporter() {
  close(fd_);
}

void LoopbackExporter::send(int port, const std::string& payload) const {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  EXPECT_EQ(
      sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
      static_cast<ssize_t>(payload.size()));
}

int free_port(int type) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

namespace {
std::size_t collect(char* p, std::size_t s, std::size_t n, void* u) {
  static_cast<std::string*>(u)->append(p, s * n);
  return s * n;
}
}  // namespace

std::optional<std::string> http_get(const std::string& url) {
  CURL* h = curl_easy_init();
  std::string body;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK || status != 200) return std::nullopt;
  return body;
}

HttpResult http_request(const std::string& method, const std::string& url, const std::string& body,
                        const std::string& unix_socket, long timeout_ms) {
  HttpResult r;
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!unix_socket.empty()) curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, unix_socket.c_str());
  curl_slist* headers = nullptr;
  if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) r.curl_error = curl_easy_strerror(rc);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  return r;
}

void write_pipe(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("open " + path);
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      close(fd);
      fail("write " + path);
    }
    off += static_cast<std::size_t>(n);
  }
  close(fd);
}

std::optional<double> metric_value(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

namespace {

// The labels of "name{a="x",b="y"} value" from `at` (just past the name); false when malformed.
bool parse_labels(const std::string& line, std::size_t at, std::map<std::string, std::string>& out,
                  std::size_t& end) {
  out.clear();
  end = at;
  if (at >= line.size() || line[at] != '{') return true;
  std::size_t i = at + 1;
  while (i < line.size() && line[i] != '}') {
    const std::size_t eq = line.find('=', i);
    if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
    std::string name = line.substr(i, eq - i), value;
    std::size_t j = eq + 2;
    for (; j < line.size() && line[j] != '"'; ++j) {
      if (line[j] == '\\' && j + 1 < line.size()) ++j;
      value += line[j];
    }
    if (j >= line.size()) return false;
    out.emplace(std::move(name), std::move(value));
    i = j + 1;
    if (i < line.size() && line[i] == ',') ++i;
  }
  if (i >= line.size()) return false;
  end = i + 1;
  return true;
}

}  // namespace

std::optional<double> metric_sum(const std::string& exposition, const std::string& selector) {
  const std::size_t brace = selector.find('{');
  const std::string name = selector.substr(0, brace);
  std::map<std::string, std::string> want;
  std::size_t end = 0;
  if (brace != std::string::npos && !parse_labels(selector, brace, want, end)) return std::nullopt;
  std::optional<double> sum;
  std::istringstream in(exposition);
  std::string line;
  std::map<std::string, std::string> labels;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    if (!parse_labels(line, name.size(), labels, end) || end >= line.size()) continue;
    bool match = true;
    for (const auto& [k, v] : want) {
      auto it = labels.find(k);
      if (it == labels.end() || it->second != v) match = false;
    }
    if (match) sum = sum.value_or(0) + std::stod(line.substr(end + 1));
  }
  return sum;
}

std::vector<std::map<std::string, std::string>> metric_samples(const std::string& exposition,
                                                               const std::string& name) {
  std::vector<std::map<std::string, std::string>> out;
  std::istringstream in(exposition);
  std::string line;
  std::map<std::string, std::string> labels;
  std::size_t end = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    if (parse_labels(line, name.size(), labels, end)) out.push_back(labels);
  }
  return out;
}

}  // namespace flowd::test
