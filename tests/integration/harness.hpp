// SPDX-License-Identifier: Apache-2.0
// Test harness: runs the real flowd binary with a temporary configuration and talks to it through
// its real pipe, real UDP sockets, a real HTTP scrape and a NOTIFY_SOCKET like systemd's.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace flowd::test {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A BPF file system mounted at `dir` (created) for the object's lifetime (privileged tests: a
// marker's pinned map); ok says whether the mount worked.
struct Bpffs {
  explicit Bpffs(const std::string& dir);
  ~Bpffs();
  Bpffs(const Bpffs&) = delete;
  Bpffs& operator=(const Bpffs&) = delete;
  std::string path;
  bool ok = false;
};

// A UDP socket bound to an ephemeral port on loopback (IPv4 or IPv6), or on `address` (e.g.
// 127.0.0.3: another loopback address, to stand for a flow's peer).
class UdpReceiver {
 public:
  explicit UdpReceiver(bool ipv6 = false, int port = 0, const std::string& address = "");
  ~UdpReceiver();
  int port() const { return port_; }
  // False when the kernel capped the receive buffer (not root): large bursts may be lost here.
  bool big_buffer() const { return big_buffer_; }
  // Next datagram, or nullopt after `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 3s);
  // Collects datagrams until `count` arrived or nothing arrived for `idle`.
  std::vector<std::string> receive_many(std::size_t count, std::chrono::milliseconds idle = 2s);

 private:
  int fd_;
  int port_;
  bool big_buffer_ = false;
};

// The NOTIFY_SOCKET end: receives what flowd passes to sd_notify(). A thread reads the socket all
// the time, as systemd does: without a reader, a sender blocks once max_dgram_qlen (10 without
// systemd's sysctl) messages wait, and flowd's main thread with it (a run of reloads).
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path);
  ~NotifySocket();
  const std::string& path() const { return path_; }
  // Waits for a message containing `needle`, dropping those before it; returns the message.
  std::optional<std::string> wait_for(const std::string& needle,
                                      std::chrono::milliseconds timeout = 10s);

 private:
  int fd_;
  std::string path_;
  std::mutex mu_;
  std::condition_variable arrived_;
  std::deque<std::string> messages_;  // read and not yet looked at
  std::jthread reader_;
};

class FlowdProcess {
 public:
  // Starts flowd with `args` (after the binary), stderr to `log_path`, NOTIFY_SOCKET set if given.
  FlowdProcess(const std::vector<std::string>& args, const std::string& log_path,
               const std::string& notify_socket = "",
               const std::vector<std::string>& extra_env = {},
               const std::vector<std::string>& prefix = {});
  ~FlowdProcess();
  pid_t pid() const { return pid_; }
  void signal(int sig) const;
  // Waits for exit; returns the exit code (128+signal if killed) or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = 10s);
  bool running();
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// Two network namespaces joined by a veth pair with ULA addresses (fd00:f10d:N::1 and ::2), named
// after the test process so parallel runs do not collide; deleted on destruction.
class NetnsPair {
 public:
  NetnsPair();
  ~NetnsPair();
  std::string a, b;            // namespace names
  std::string veth_a, veth_b;  // interface names inside a and b
  std::string addr_a, addr_b;  // IPv6 addresses (no prefix length)
  // Runs `cmd` inside namespace `ns` with sh -c; returns the exit status, output in `out`.
  int exec(const std::string& ns, const std::string& cmd, std::string& out) const;
};

// tcpdump on `iface` inside namespace `ns`, writing `pcap` (filter: a pcap-filter expression),
// started and listening when the constructor returns; stop() (or the destructor) ends it and waits
// for it.
class Tcpdump {
 public:
  Tcpdump(const std::string& ns, const std::string& iface, const std::string& filter,
          const std::string& pcap);
  ~Tcpdump() { stop(); }
  Tcpdump(const Tcpdump&) = delete;
  Tcpdump& operator=(const Tcpdump&) = delete;
  void stop();

 private:
  int pid_ = -1;
};

// Runs flowd to completion (for --check-config and friends). Returns exit code; output in `out`.
int run_flowd(const std::vector<std::string>& args, std::string& out, std::string& err);

std::string flowd_binary();
std::string fixtures_dir();
std::string read_file(const std::string& path);
// A TCP port that was free a moment ago on 127.0.0.1.
int free_tcp_port();
// The UDP (ip_protocol 17) or TCP (6) payloads of a little-endian classic pcap of Ethernet/IPv4
// frames, in capture order, one per datagram or segment (test fixtures made by the fixtures'
// scripts).
std::vector<std::string> capture_payloads(const std::string& pcap, int ip_protocol);
// Sends each payload as one UDP datagram to 127.0.0.1:port, in order.
void send_udp_payloads(int port, const std::vector<std::string>& payloads);
// Sends `payload` from `n` UDP sockets (n exporters, distinct source ports) to 127.0.0.1:port.
void send_from_exporters(int port, const std::string& payload, int n);
int free_udp_port();
// One UDP socket bound to 127.0.0.<host>:0: an exporter address of its own on loopback.
class LoopbackExporter {
 public:
  explicit LoopbackExporter(int host);
  ~LoopbackExporter();
  LoopbackExporter(const LoopbackExporter&) = delete;
  LoopbackExporter& operator=(const LoopbackExporter&) = delete;
  // Sends `payload` as one datagram to 127.0.0.1:port (fails the test when it is not sent whole).
  void send(int port, const std::string& payload) const;

 private:
  int fd_;
};
int free_port(int socket_type);
// HTTP GET via libcurl; returns the body, or nullopt (status != 200 or no answer).
std::optional<std::string> http_get(const std::string& url);
// One HTTP request via libcurl, over TCP or (unix_socket non-empty) a unix socket as
// `curl --unix-socket` does. status is 0 when nothing answered (curl_error says why).
struct HttpResult {
  long status = 0;
  std::string body;
  std::string curl_error;
};
HttpResult http_request(const std::string& method, const std::string& url,
                        const std::string& body = "", const std::string& unix_socket = "",
                        long timeout_ms = 5000);
// Runs a shell command with `input` on stdin; returns exit status, output in `out`.
int run_shell(const std::string& cmd, const std::string& input, std::string& out);
// Writes `data` to the FIFO at `path` with one write() per chunk.
void write_pipe(const std::string& path, const std::string& data);
// The value of one sample ("name{labels}") in a Prometheus text exposition, or nullopt.
std::optional<double> metric_value(const std::string& exposition, const std::string& series);
// The sum of every sample of a metric that carries the given labels: `selector` is "name" (all of
// its samples) or "name{a=\"x\",b=\"y\"}" (those whose labels include a="x" and b="y", whatever
// other labels they have, e.g. the per-exporter ones). nullopt when no sample matched.
std::optional<double> metric_sum(const std::string& exposition, const std::string& selector);
// The label sets of every sample of `name`, as label -> value maps.
std::vector<std::map<std::string, std::string>> metric_samples(const std::string& exposition,
                                                               const std::string& name);

}  // namespace flowd::test
