// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/netflow_plugin.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <atomic>
#include <mutex>
#include <thread>
#include <cstring>
#include <map>

#include "collector/decoder.hpp"
#include "collector/record_json.hpp"
#include "collector/sflow.hpp"
#include "common/net/endpoint.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/stop_fd.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "plugins/netflow/observed_metrics.hpp"

namespace flowd::netflow {
namespace {

constexpr KeySpec kKeys[] = {
    {"listen", KeyType::kList, "0.0.0.0:2055, 0.0.0.0:4739", "UDP addresses taking NetFlow v1/v5/v9 and IPFIX"},
    {"tcp_listen", KeyType::kList, "0.0.0.0:4739", "TCP addresses taking IPFIX over TCP; empty: none"},
    {.name = "template_timeout", .type = KeyType::kDuration, .default_value = "1800",
     .help = "how long a UDP template lives without a refresh", .min = 10 * 1000, .max = 86400 * 1000},
    {.name = "idle_timeout", .type = KeyType::kDuration, .default_value = "60",
     .help = "time without a record after which a flow ends", .min = 1000, .max = 86400 * 1000},
    {"max_flows", KeyType::kInt, "100000", "flows tracked at once; beyond this new ones are not reported", {}, 1,
     10000000},
    {"rules", KeyType::kList, "",
     "tags for flows without a Scitags flow label: 'PREFIX[:PORT] EXPERIMENT ACTIVITY', comma separated"},
    {"dump", KeyType::kString, "", "write every decoded record as a JSON line to this file (.gz: gzip)"},
    {"rcvbuf", KeyType::kInt, "8388608", "UDP receive buffer in bytes (SO_RCVBUF)", {}, 65536, 1073741824},
    {"workers", KeyType::kInt, "1",
     "UDP receive threads; each has its own SO_REUSEPORT socket per listen address and its own templates "
     "(the kernel keeps an exporter on one socket)", {}, 1, 64},
    {"apply_sampling", KeyType::kBool, "no",
     "multiply packet and octet counters by the exporter's sampling rate (v5 header, v9/IPFIX sampling options)"},
    {"max_templates", KeyType::kInt, "4096", "templates kept per exporter; more are refused and counted", {}, 1,
     65535},
    {"label_trust", KeyType::kChoice, "registered",
     "when a flowLabelIPv6 is a Scitags tag: registered (its experiment/activity pair is in the registry), any "
     "(non-zero Scitags bits; labs only), off (never; only rules tag)", {}, 0, 0, "registered,any,off"},
    {"label_networks", KeyType::kList, "",
     "CIDR list (the site's storage networks): a label is a tag only on flows with an end inside; empty: any"},
    {"allow", KeyType::kList, "",
     "CIDR list of exporters taken (UDP sources, TCP peers); others are dropped and counted; empty: all"},
};

// sflow: the same receive, tracking and trust keys; no TCP and no templates.
constexpr KeySpec kSflowKeys[] = {
    {"listen", KeyType::kList, "0.0.0.0:6343", "UDP addresses taking sFlow v5"},
    {.name = "idle_timeout", .type = KeyType::kDuration, .default_value = "60",
     .help = "time without a sample after which a flow ends", .min = 1000, .max = 86400 * 1000},
    {"max_flows", KeyType::kInt, "100000", "flows tracked at once; beyond this new ones are not reported", {}, 1,
     10000000},
    {"rules", KeyType::kList, "",
     "tags for flows without a Scitags flow label: 'PREFIX[:PORT] EXPERIMENT ACTIVITY', comma separated"},
    {"dump", KeyType::kString, "", "write every decoded sample as a JSON line to this file (.gz: gzip)"},
    {"rcvbuf", KeyType::kInt, "8388608", "UDP receive buffer in bytes (SO_RCVBUF)", {}, 65536, 1073741824},
    {"workers", KeyType::kInt, "1",
     "UDP receive threads; each has its own SO_REUSEPORT socket per listen address (the kernel keeps an agent "
     "on one socket)", {}, 1, 64},
    {"apply_sampling", KeyType::kBool, "no",
     "multiply each sample's packet and octet counts by its sampling rate in dumps (metrics always scale)"},
    {"label_trust", KeyType::kChoice, "registered",
     "when a sampled packet's IPv6 flow label is a Scitags tag: registered, any (labs only), off", {}, 0, 0,
     "registered,any,off"},
    {"label_networks", KeyType::kList, "",
     "CIDR list (the site's storage networks): a label is a tag only on flows with an end inside; empty: any"},
    {"allow", KeyType::kList, "", "CIDR list of sFlow agents taken (UDP sources); others are dropped and counted"},
};

enum class Wire : std::uint8_t { kNetflow, kSflow };

std::vector<net::Prefix> prefixes(const Section& cfg, const char* key) {
  std::vector<net::Prefix> out;
  for (const auto& text : cfg.get_list(key)) {
    auto p = net::parse_prefix(text);
    if (!p) throw ConfigError("[" + cfg.name() + "] " + key + ": '" + text + "' is not an address or CIDR prefix");
    out.push_back(*p);
  }
  return out;
}

struct Socket {
  int fd = -1;
  bool tcp_listener = false;
  bool tcp_session = false;
  collector::Exporter peer;
  std::vector<std::uint8_t> buffer;  // TCP: bytes not yet a whole message
  std::unique_ptr<collector::Decoder> decoder;  // TCP sessions: templates live per session
};

// One UDP receive thread: its own sockets (SO_REUSEPORT siblings of the other workers') and its own
// templates, since the kernel hashes an exporter's datagrams to one socket. Worker 0 also serves
// IPFIX over TCP and the idle-flow timer, on the plugin's own thread.
struct Worker {
  std::vector<int> udp_fds;
  collector::Decoder decoder;
  collector::SflowDecoder sflow;  // the sflow plugin's
  collector::RecordBatch records;
  std::vector<FlowID> events;
  VolumeBatch volume;
  std::atomic<std::size_t> templates{0}, pending{0};
};

// flowd_netflow_templates and flowd_netflow_pending_records, summed over the workers when scraped:
// each worker publishes its own counts, and a sum taken by one worker could be stale by the time
// another's is newer.
class NetflowGauges final : public prometheus::Collectable {
 public:
  explicit NetflowGauges(const std::vector<std::unique_ptr<Worker>>& workers) : workers_(workers) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    double t = 0, p = 0;
    for (const auto& w : workers_) {
      t += static_cast<double>(w->templates.load(std::memory_order_relaxed));
      p += static_cast<double>(w->pending.load(std::memory_order_relaxed));
    }
    return {family("flowd_netflow_templates", "Templates known (UDP exporters and TCP sessions)", t),
            family("flowd_netflow_pending_records", "Data sets held while their template is missing", p)};
  }

 private:
  static prometheus::MetricFamily family(const char* name, const char* help, double v) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric m;
    m.gauge.value = v;
    f.metric.push_back(m);
    return f;
  }
  const std::vector<std::unique_ptr<Worker>>& workers_;
};

class NetflowPlugin final : public Plugin {
 public:
  NetflowPlugin(const Section& cfg, Context& ctx, const char* name, Wire wire)
      : wire_(wire),
        prefix_(wire == Wire::kSflow ? "flowd_sflow_" : "flowd_netflow_"),
        name_(name),
        listen_(cfg.get_list("listen")),
        tcp_listen_(wire == Wire::kSflow ? std::vector<std::string>{} : cfg.get_list("tcp_listen")),
        idle_(cfg.get_int("idle_timeout")),
        dump_path_(cfg.get("dump")),
        rcvbuf_(static_cast<int>(cfg.get_int("rcvbuf"))),
        log_(get_logger(wire == Wire::kSflow ? "plugin.sflow" : "plugin.netflow")),
        hub_(ctx.hub),
        registry_(ctx.registry),
        heartbeats_(ctx.heartbeats),
        allow_(prefixes(cfg, "allow")),
        observed_(ctx.metrics) {
    limits_.apply_sampling = cfg.get_bool("apply_sampling");
    collector::SflowLimits sflow_limits;
    sflow_limits.apply_sampling = limits_.apply_sampling;
    if (wire_ == Wire::kNetflow) {
      limits_.template_timeout = std::chrono::seconds(cfg.get_int("template_timeout"));
      limits_.max_templates_per_exporter = static_cast<std::size_t>(cfg.get_int("max_templates"));
    }
    const auto workers = static_cast<std::size_t>(cfg.get_int("workers"));
    for (std::size_t i = 0; i < workers; ++i) {
      workers_.push_back(std::make_unique<Worker>());
      workers_.back()->decoder = collector::Decoder(limits_);
      workers_.back()->sflow = collector::SflowDecoder(sflow_limits);
    }
    std::vector<FlowRule> rules;
    auto reg = ctx.registry.get();
    for (const auto& text : cfg.get_list("rules")) {
      std::string error;
      auto r = parse_rule(text, *reg, error);
      if (!r) throw ConfigError("[" + cfg.name() + "] rules: '" + text + "': " + error);
      rules.push_back(*r);
    }
    tracker_.emplace(std::move(rules),
                     LabelPolicy(*parse_label_trust(cfg.get("label_trust")), prefixes(cfg, "label_networks")), idle_,
                     static_cast<std::size_t>(cfg.get_int("max_flows")));
    auto& m = ctx.metrics;
    if (wire_ == Wire::kNetflow) {
      packets_ = &prometheus::BuildCounter().Name("flowd_netflow_packets_total")
                      .Help("Export packets (UDP datagrams, TCP messages) received, by version").Register(m);
      records_ = &prometheus::BuildCounter().Name("flowd_netflow_records_total")
                      .Help("Flow records decoded, by version").Register(m);
      errors_ = &prometheus::BuildCounter().Name("flowd_netflow_decode_errors_total")
                     .Help("Problems found while decoding exports, by version and reason").Register(m);
      // One series per version from the start; looked up by index per datagram, not by label.
      for (std::size_t i = 0; i < kVersions.size(); ++i) {
        packet_counters_[i] = &packets_->Add({{"version", std::string(kVersions[i])}});
        record_counters_[i] = &records_->Add({{"version", std::string(kVersions[i])}});
      }
      lost_ = &prometheus::BuildCounter().Name("flowd_netflow_sequence_lost_total")
                   .Help("Records or packets missing according to the exporters' sequence numbers").Register(m).Add({});
      hub_.add(&gauges_);
    } else {
      packet_counters_[0] = &prometheus::BuildCounter().Name("flowd_sflow_datagrams_total")
                                 .Help("sFlow datagrams received").Register(m).Add({});
      record_counters_[0] = &prometheus::BuildCounter().Name("flowd_sflow_samples_total")
                                 .Help("sFlow flow samples decoded").Register(m).Add({});
      auto& errors = prometheus::BuildCounter().Name("flowd_sflow_decode_errors_total")
                         .Help("Problems found while decoding sFlow datagrams, by reason").Register(m);
      for (std::size_t i = 0; i < collector::kSflowErrorCount; ++i)
        sflow_errors_[i] = &errors.Add({{"reason", std::string(collector::to_string(static_cast<collector::SflowError>(i)))}});
      lost_ = &prometheus::BuildCounter().Name("flowd_sflow_sequence_lost_total")
                   .Help("Datagrams missing according to the agents' sequence numbers").Register(m).Add({});
      sflow_counter_samples_ = &prometheus::BuildCounter()
                                    .Name("flowd_sflow_counters_samples_total")
                                    .Help("sFlow counter samples received (skipped)")
                                    .Register(m)
                                    .Add({});
      sflow_extended_ = &prometheus::BuildCounter().Name("flowd_sflow_extended_records_total")
                             .Help("sFlow extended flow records received (skipped)").Register(m).Add({});
    }
    refused_ = &prometheus::BuildCounter().Name(prefix_ + "refused_total")
                    .Help("Datagrams and TCP sessions from exporters outside `allow`, dropped unread, by transport")
                    .Register(m);
    refused_udp_ = &refused_->Add({{"transport", "udp"}});
    refused_tcp_ = wire_ == Wire::kNetflow ? &refused_->Add({{"transport", "tcp"}}) : nullptr;
    overflow_ = &prometheus::BuildCounter().Name(prefix_ + "flows_overflow_total")
                     .Help("Flows not tracked because max_flows flows were tracked already (their events are lost)")
                     .Register(m).Add({});
  }

  ~NetflowPlugin() override {
    if (wire_ == Wire::kNetflow) hub_.remove(&gauges_);
    close_all();
  }

  void start() override {
    for (const auto& l : listen_)
      for (auto& w : workers_) w->udp_fds.push_back(open_socket(l, false, workers_.size() > 1));
    for (const auto& l : tcp_listen_) open_socket(l, true, false);
    if (!dump_path_.empty()) {
      // Appended to: a reload, a restart or a crash must not wipe what earlier runs wrote (a gzip file
      // then holds several members, which gzip, zcat and `flowd analyze` read as one stream).
      dump_ = gzopen(dump_path_.c_str(), dump_path_.ends_with(".gz") ? "ab" : "abT");
      if (!dump_) throw std::runtime_error("[plugin." + std::string(name_) + "] dump: cannot open " + dump_path_);
    }
  }

  // Worker 0 runs here; workers 1..n-1 on threads of their own. When any worker fails, it closes
  // its sockets (a dead SO_REUSEPORT socket that stays bound keeps receiving the exporters the
  // kernel hashes to it, and nobody reads them), every other worker stops, and run() throws: the
  // plugin fails as a whole, like a plugin without workers, and the supervisor sees it at once.
  void run(std::stop_token stop, Publisher& out) override {
    std::stop_source workers_stop;
    std::stop_callback forward(stop, [&] { workers_stop.request_stop(); });
    std::mutex failure_mu;
    std::string failure;
    auto guarded = [&](std::size_t i) {
      try {
        run_worker(workers_stop.get_token(), *workers_[i], out, i == 0);
      } catch (const std::exception& e) {
        close_worker_sockets(*workers_[i], i == 0);
        log_->error("receive worker {} failed: {}; its sockets are closed and the plugin stops", i,
                    e.what());
        {
          std::lock_guard lock(failure_mu);
          if (failure.empty()) failure = fmt::format("receive worker {}: {}", i, e.what());
        }
        workers_stop.request_stop();
      }
    };
    std::vector<std::jthread> extra;
    // Declared after `extra`, so destroyed before it: whatever leaves this scope (a thread that
    // could not be created), the workers are told to stop before their threads are joined.
    struct StopWorkers {
      std::stop_source& s;
      ~StopWorkers() { s.request_stop(); }
    } stop_workers{workers_stop};
    for (std::size_t i = 1; i < workers_.size(); ++i)
      extra.emplace_back([&, i] {
        auto hb =
            heartbeats_ ? heartbeats_->add(fmt::format("plugin.{} worker {}", name_, i)) : nullptr;
        bind_thread_heartbeat(hb.get());
        guarded(i);
        if (hb) hb->enter_wait();  // ended: not stuck
      });
    guarded(0);
    for (auto& t : extra) t.join();
    // Flows reported as started get their end now: a stop or a reload that replaces this plugin would
    // otherwise leave them active in every backend for ever.
    std::vector<FlowID> ends;
    {
      std::lock_guard lock(tracker_mu_);
      tracker_->end_all(Clock::now(), ends);
    }
    out.publish(ends);
    if (!failure.empty()) throw std::runtime_error(failure);
  }

  void stop() override { close_all(); }

 private:
  // Closes what a worker read from: UDP sockets, and for worker 0 the TCP listeners and sessions.
  // Only the worker's own thread calls it (or stop() once every worker is joined).
  void close_worker_sockets(Worker& w, bool main) {
    for (int fd : w.udp_fds) ::close(fd);
    w.udp_fds.clear();
    if (!main) return;
    for (auto& [fd, s] : sockets_) ::close(fd);
    sockets_.clear();
  }

  void run_worker(std::stop_token stop, Worker& w, Publisher& out, bool main) {
    StopFd stopfd(stop);
    // Closed on every way out, a throw included.
    struct OwnedFd {
      int fd;
      ~OwnedFd() {
        if (fd >= 0) ::close(fd);
      }
    };
    OwnedFd epoll_fd{epoll_create1(EPOLL_CLOEXEC)};
    if (epoll_fd.fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    OwnedFd timer_fd{timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)};
    if (timer_fd.fd < 0) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    const int ep = epoll_fd.fd, timer = timer_fd.fd;
    // Idle flows and template lifetimes are checked a few times per idle_timeout.
    itimerspec its{};
    auto tick = std::max<long>(1, idle_.count() / 4);
    its.it_interval.tv_sec = its.it_value.tv_sec = tick;
    if (timerfd_settime(timer, 0, &its, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "timerfd_settime");
    auto add = [&](int fd) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    };
    add(stopfd.fd());
    add(timer);
    for (int fd : w.udp_fds) add(fd);
    if (main)
      for (auto& [fd, s] : sockets_) add(fd);
    std::array<epoll_event, 32> ready;
    while (!stop.stop_requested()) {
      int n;
      {
        WaitingScope waiting;
        n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), -1);
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      for (int i = 0; i < n; ++i) {
        int fd = ready[static_cast<std::size_t>(i)].data.fd;
        if (fd == stopfd.fd()) break;
        w.events.clear();
        if (fd == timer) {
          std::uint64_t ticks;
          [[maybe_unused]] auto r = read(timer, &ticks, sizeof ticks);
          auto now = Clock::now();
          w.decoder.expire(now);
          if (main) {
            std::lock_guard lock(tracker_mu_);
            tracker_->expire(now, w.events);
          }
          if (main && dump_) {
            // Records reach the disk within a tick, for `tail -f` and so that a crash loses little.
            std::lock_guard lock(dump_mu_);
            gzflush(dump_, Z_SYNC_FLUSH);
          }
        } else if (auto it = sockets_.find(fd); main && it != sockets_.end()) {
          if (it->second.tcp_listener) {
            accept_session(it->second, add);
          } else if (!read_session(w, it->second)) {
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
            ::close(fd);
            sockets_.erase(it);
          }
        } else {
          read_datagrams(w, fd);
        }
        out.publish(w.events);
        publish_counts(w);
      }
    }
  }


  // Returns the UDP socket; TCP listeners are kept in sockets_ (served by worker 0).
  int open_socket(const std::string& text, bool tcp, bool reuseport) {
    auto ep = net::parse_endpoint(text, tcp ? 4739 : wire_ == Wire::kSflow ? 6343 : 2055);
    if (!ep) throw ConfigError("[plugin." + std::string(name_) + "] " + std::string(tcp ? "tcp_listen" : "listen") + ": cannot parse " + text);
    addrinfo hints{};
    hints.ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(ep->host.c_str(), std::to_string(ep->port).c_str(), &hints, &res); rc != 0)
      throw std::runtime_error("[plugin." + std::string(name_) + "] cannot resolve " + text + ": " + gai_strerror(rc));
    int fd = ::socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (!tcp && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_) != 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, sizeof rcvbuf_);
    if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || (tcp && ::listen(fd, 64) != 0)) {
      int err = errno;
      freeaddrinfo(res);
      if (fd >= 0) ::close(fd);
      throw std::system_error(err, std::generic_category(),
                              "[plugin." + std::string(name_) + "] cannot listen on " + (tcp ? "TCP " : "UDP ") + text);
    }
    freeaddrinfo(res);
    if (tcp) {
      Socket s;
      s.fd = fd;
      s.tcp_listener = true;
      sockets_.emplace(fd, std::move(s));
    } else {
      ++udp_opened_;
    }
    if (tcp || udp_opened_ % workers_.size() == 1 || workers_.size() == 1)
      log_->info("collecting {} on {}{}", tcp ? "IPFIX over TCP" : wire_ == Wire::kSflow ? "sFlow v5" : "NetFlow/IPFIX over UDP", ep->to_string(),
                 tcp || workers_.size() == 1 ? "" : fmt::format(" ({} workers)", workers_.size()));
    return fd;
  }

  static collector::Exporter exporter_of(const sockaddr_storage& ss) {
    collector::Exporter e;
    if (ss.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
      e.address.family = AF_INET6;
      std::memcpy(e.address.bytes.data(), &a->sin6_addr, 16);
      e.port = ntohs(a->sin6_port);
      if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
        e.address = IpAddress{};
        e.address.family = AF_INET;
        std::memcpy(e.address.bytes.data(), reinterpret_cast<const std::uint8_t*>(&a->sin6_addr) + 12, 4);
      }
    } else {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
      e.address.family = AF_INET;
      std::memcpy(e.address.bytes.data(), &a->sin_addr, 4);
      e.port = ntohs(a->sin_port);
    }
    return e;
  }

  void read_datagrams(Worker& w, int fd) {
    constexpr unsigned kBatch = 32;
    thread_local std::vector<std::array<std::uint8_t, 65536>> bufs(kBatch);
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    std::array<sockaddr_storage, kBatch> from{};
    // Bounded, so that a flood cannot keep the worker from its stop request, its timer or its other
    // sockets (the epoll wait is level-triggered: what is left is read next round).
    for (int round = 0; round < 64; ++round) {
      for (unsigned i = 0; i < kBatch; ++i) {
        iov[i] = {bufs[i].data(), bufs[i].size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      }
      int n = recvmmsg(fd, msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) return;
      auto now = Clock::now();
      for (int i = 0; i < n; ++i) {
        auto k = static_cast<std::size_t>(i);
        const collector::Exporter exporter = exporter_of(from[k]);
        if (!allowed(exporter.address)) {
          refused_udp_->Increment();
          log_refused("datagram", exporter);
          continue;
        }
        const std::span<const std::uint8_t> payload(bufs[k].data(), msgs[k].msg_len);
        if (wire_ == Wire::kSflow)
          handle_sflow(w, payload, exporter, now);
        else
          handle_payload(w, w.decoder, payload, exporter, now);
      }
      if (static_cast<unsigned>(n) < kBatch) return;
    }
  }

  template <class Add>
  void accept_session(Socket& listener, Add&& add) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listener.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    Socket s;
    s.fd = fd;
    s.tcp_session = true;
    s.peer = exporter_of(ss);
    if (!allowed(s.peer.address)) {
      refused_tcp_->Increment();
      log_refused("IPFIX session", s.peer);
      ::close(fd);
      return;
    }
    collector::DecoderLimits l = limits_;
    l.udp = false;
    s.decoder = std::make_unique<collector::Decoder>(l);
    log_->info("IPFIX session from {}", s.peer.to_string());
    sockets_.emplace(fd, std::move(s));
    add(fd);
  }

  // False when the session ended (peer closed, error, or a message length < 16: RFC 7011 §10.4).
  bool read_session(Worker& w, Socket& s) {
    std::array<std::uint8_t, 65536> buf;
    while (true) {
      ssize_t n = ::recv(s.fd, buf.data(), buf.size(), 0);
      if (n == 0) {
        log_->info("IPFIX session from {} closed", s.peer.to_string());
        return false;
      }
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      s.buffer.insert(s.buffer.end(), buf.begin(), buf.begin() + n);
      while (s.buffer.size() >= 16) {
        std::size_t len = static_cast<std::size_t>(s.buffer[2] << 8 | s.buffer[3]);
        if (len < 16 || s.buffer[0] != 0 || s.buffer[1] != 10) {
          count_error(10, collector::DecodeError::kBadLength);
          log_->warn("IPFIX session from {}: message length {} < 16 or not IPFIX; closing it", s.peer.to_string(), len);
          return false;
        }
        if (s.buffer.size() < len) break;
        handle_payload(w, *s.decoder, std::span<const std::uint8_t>(s.buffer.data(), len), s.peer, Clock::now());
        s.buffer.erase(s.buffer.begin(), s.buffer.begin() + static_cast<std::ptrdiff_t>(len));
      }
    }
  }

  void handle_payload(Worker& w, collector::Decoder& d, std::span<const std::uint8_t> bytes,
                      const collector::Exporter& from, TimePoint now) {
    w.records.clear();
    auto r = d.decode(bytes, from, now, w.records);
    publish_counts(w);  // before the counters: whoever sees the records counted sees their templates
    const std::size_t v = version_slot(r.version);
    packet_counters_[v]->Increment();
    if (r.records) record_counters_[v]->Increment(static_cast<double>(r.records));
    if (r.sequence_lost) lost_->Increment(static_cast<double>(r.sequence_lost));
    for (auto e : r.errors) {
      count_error(r.version, e);
      std::uint64_t held = 0;
      std::unique_lock lock(log_mu_);
      if (limiter_.allow(held))
        log_->warn("export from {} (v{}, {} bytes): {}{}", from.to_string(), r.version, bytes.size(),
                   collector::to_string(e), held ? fmt::format(" ({} more not logged)", held) : "");
    }
    observe_records(w, from, now);
  }

  void handle_sflow(Worker& w, std::span<const std::uint8_t> bytes, const collector::Exporter& from, TimePoint now) {
    w.records.clear();
    auto r = w.sflow.decode(bytes, from, now, w.records);
    packet_counters_[0]->Increment();
    if (r.records) record_counters_[0]->Increment(static_cast<double>(r.records));
    if (r.sequence_lost) lost_->Increment(static_cast<double>(r.sequence_lost));
    if (r.counter_samples) sflow_counter_samples_->Increment(static_cast<double>(r.counter_samples));
    if (r.extended_records) sflow_extended_->Increment(static_cast<double>(r.extended_records));
    for (std::size_t i = 0; i < r.errors.size(); ++i) {
      if (r.errors[i] == 0) continue;
      sflow_errors_[i]->Increment(r.errors[i]);
      std::uint64_t held = 0;
      std::unique_lock lock(log_mu_);
      if (limiter_.allow(held))
        log_->warn("sFlow datagram from {} ({} bytes): {}{}", from.to_string(), bytes.size(),
                   collector::to_string(static_cast<collector::SflowError>(i)),
                   held ? fmt::format(" ({} more not logged)", held) : "");
    }
    observe_records(w, from, now);
  }

  // Dump, flow tracking, labels and volume of the records just decoded into w.records.
  void observe_records(Worker& w, const collector::Exporter& from, TimePoint now) {
    if (w.records.empty()) return;
    if (dump_) {
      std::string lines;
      for (const auto& rec : w.records) lines += collector::to_json(rec).dump() + "\n";
      std::lock_guard lock(dump_mu_);
      gzwrite(dump_, lines.data(), static_cast<unsigned>(lines.size()));
    }
    const auto registry = registry_.get();
    w.volume.clear();
    std::array<double, kLabelResultCount> labels{};
    std::size_t overflow_before, overflow_after;
    {
      std::lock_guard lock(tracker_mu_);
      overflow_before = tracker_->overflow();
      Observation o;
      for (const auto& rec : w.records) {
        tracker_->observe(rec, now, registry, w.events, o);
        if (o.label) ++labels[static_cast<std::size_t>(*o.label)];
        if (!rec.options) w.volume.add(rec, o.tag);
      }
      overflow_after = tracker_->overflow();
    }
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] > 0) observed_.count_label(static_cast<LabelResult>(i), labels[i]);
    observed_.add(w.volume, registry);
    if (overflow_after > overflow_before) {
      overflow_->Increment(static_cast<double>(overflow_after - overflow_before));
      std::uint64_t held = 0;
      std::unique_lock lock(log_mu_);
      if (overflow_limiter_.allow(held))
        log_->warn("max_flows flows are tracked: {} more flows from {} not tracked, their events lost{}",
                   overflow_after - overflow_before, from.to_string(),
                   held ? fmt::format(" ({} more warnings not logged)", held) : "");
    }
  }

  bool allowed(const IpAddress& a) const {
    if (allow_.empty()) return true;
    for (const auto& p : allow_)
      if (p.contains(a)) return true;
    return false;
  }

  void log_refused(const char* what, const collector::Exporter& from) {
    std::uint64_t held = 0;
    std::unique_lock lock(log_mu_);
    if (refused_limiter_.allow(held))
      log_->warn("{} from {} refused: not in allow{}", what, from.to_string(),
                 held ? fmt::format(" ({} more not logged)", held) : "");
  }

  void count_error(int version, collector::DecodeError e) {
    // The version label comes from a closed set: the first bytes of junk never mint a series.
    errors_->Add({{"version", std::string(kVersions[version_slot(version)])}, {"reason", std::string(collector::to_string(e))}})
        .Increment();
  }

  // What the scrape-time gauges read. TCP sessions belong to worker 0.
  void publish_counts(Worker& w) {
    std::size_t t = w.decoder.template_count(), p = w.decoder.pending_count();
    if (&w == workers_.front().get())
      for (auto& [fd, s] : sockets_)
        if (s.decoder) {
          t += s.decoder->template_count();
          p += s.decoder->pending_count();
        }
    w.templates.store(t, std::memory_order_relaxed);
    w.pending.store(p, std::memory_order_relaxed);
  }

  void close_all() {
    for (auto& w : workers_) close_worker_sockets(*w, &w == &workers_.front());
    if (dump_) gzclose(dump_);
    dump_ = nullptr;
  }

  Wire wire_;
  std::string prefix_;  // of the plugin's own metric names
  const char* name_;
  std::vector<std::string> listen_, tcp_listen_;
  std::chrono::seconds idle_;
  std::string dump_path_;
  int rcvbuf_;
  std::shared_ptr<spdlog::logger> log_;
  collector::DecoderLimits limits_;
  std::vector<std::unique_ptr<Worker>> workers_;
  MetricsHub& hub_;
  RegistryHandle& registry_;
  HeartbeatBoard* heartbeats_;  // for the workers' threads; null in unit tests
  std::vector<net::Prefix> allow_;
  ObservedMetrics observed_;
  NetflowGauges gauges_{workers_};
  std::size_t udp_opened_ = 0;  // UDP sockets opened by start(), all workers together
  std::mutex tracker_mu_;     // flows are shared: two exporters may report the same one
  std::optional<FlowTracker> tracker_;
  std::map<int, Socket> sockets_;  // TCP listeners and sessions (worker 0 only)
  std::mutex dump_mu_, log_mu_;
  gzFile dump_ = nullptr;
  static constexpr std::array<std::string_view, 5> kVersions{"1", "5", "9", "10", "unknown"};
  static std::size_t version_slot(int v) {
    switch (v) {
      case 1: return 0;
      case 5: return 1;
      case 9: return 2;
      case 10: return 3;
      default: return 4;
    }
  }
  prometheus::Family<prometheus::Counter>*packets_, *records_, *errors_;
  std::array<prometheus::Counter*, kVersions.size()> packet_counters_{}, record_counters_{};
  prometheus::Counter* lost_;
  std::array<prometheus::Counter*, collector::kSflowErrorCount> sflow_errors_{};
  prometheus::Counter *sflow_counter_samples_ = nullptr, *sflow_extended_ = nullptr;
  prometheus::Family<prometheus::Counter>* refused_;
  prometheus::Counter *refused_udp_, *refused_tcp_, *overflow_;
  LogLimiter limiter_, refused_limiter_, overflow_limiter_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<NetflowPlugin>(cfg, ctx, name, Wire::kNetflow);
}
std::unique_ptr<Plugin> create_sflow(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<NetflowPlugin>(cfg, ctx, name, Wire::kSflow);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{"netflow", "NetFlow v1/v5/v9 and IPFIX collector (UDP, IPFIX over TCP)", kKeys, create};
  return info;
}

const PluginInfo& sflow_plugin_info() {
  static const PluginInfo info{"sflow", "sFlow v5 collector: sampled packet headers (5-tuple, IPv6 flow label)",
                               kSflowKeys, create_sflow};
  return info;
}

}  // namespace flowd::netflow
