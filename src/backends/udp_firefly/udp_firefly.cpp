// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/udp_firefly.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <mutex>

#include "backends/udp_firefly/firefly_route.hpp"
#include "backends/udp_firefly/ip_discovery.hpp"
#include "backends/udp_firefly/start_times.hpp"
#include "backends/udp_firefly/tcp_enrichment.hpp"
#include "common/net/endpoint.hpp"
#include "flowd/log.hpp"
#include "firefly/firefly_message.hpp"
#include "flowd/event_queue.hpp"

namespace flowd::udp_firefly {

using firefly::build_firefly;
using firefly::build_relayed_firefly;
using firefly::FireflyFields;

namespace {

// A table, one key per entry: kept as written.
// clang-format off
constexpr KeySpec kKeys[] = {
    {"port", KeyType::kInt, "10514", "destination UDP port of fireflies", "UDP_FIREFLY_PORT", 1, 65535},
    {"collector", KeyType::kEndpoint, "",
     "a copy of every firefly also goes here: host or host:port (port defaults to `port`)", "UDP_FIREFLY_DST"},
    {"ip4_src", KeyType::kIPv4, "", "written as src-ip of IPv4 fireflies (e.g. the public address behind NAT)",
     "UDP_FIREFLY_IP4_SRC"},
    {"ip6_src", KeyType::kIPv6, "", "written as src-ip of IPv6 fireflies", "UDP_FIREFLY_IP6_SRC"},
    {"syslog_header", KeyType::kBool, "yes", "prefix the RFC 5424 syslog header (PRI 134, UTC time, host name, flowd, firefly-json)"},
    {"max_tracked_flows", KeyType::kInt, "100000",
     "start times remembered for end fireflies; beyond this the oldest are forgotten", {}, 1, 100000000},
    {"ip_discovery", KeyType::kBool, "no",
     "replace this host's internal address in fireflies by its public one (static mapping or STUN); "
     "discovered at start and on reload", "IP_DISCOVERY_ENABLED"},
    {"stun_servers", KeyType::kList, "stun.l.google.com:19302, stun.services.mozilla.org:3478",
     "STUN servers (host[:port], default port 3478) asked in order for the public address"},
    {"public_ip4", KeyType::kIPv4, "", "static public IPv4 address for ip_discovery (no STUN for IPv4)"},
    {"public_ip6", KeyType::kIPv6, "", "static public IPv6 address for ip_discovery (no STUN for IPv6)"},
    {.name = "stun_timeout_ms", .type = KeyType::kDuration, .default_value = "2000", .help = "wait for each STUN answer",
     .min = 10, .max = 60000, .unit = DurationUnit::kMilliseconds, .resolution = DurationUnit::kMilliseconds},
    {"stun_attempts", KeyType::kInt, "3", "STUN requests per server before trying the next", {}, 1, 10},
    {"netlink", KeyType::kBool, "no", "add a netlink section (the socket's tcp_info) to fireflies of TCP flows on this host",
     "UDP_FIREFLY_NETLINK"},
    {.name = "ongoing_interval", .type = KeyType::kDuration, .default_value = "0",
     .help = "with netlink = yes: time between `ongoing` fireflies with fresh tcp_info while a flow lives; 0 = none",
     .min = 0, .max = 86400 * 1000},
    {"forward_observed", KeyType::kBool, "no",
     "send fireflies of observed flows (netflow: seen by a router) to `collector`; they never go to the flow's "
     "addresses"},
};
// clang-format on

struct Destination {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

class UdpFirefly final : public Backend {
 public:
  UdpFirefly(const Section& cfg, Context& ctx)
      : port_(static_cast<std::uint16_t>(cfg.get_int("port"))),
        collector_text_(cfg.get("collector")),
        ip4_src_(cfg.get("ip4_src")),
        ip6_src_(cfg.get("ip6_src")),
        syslog_header_(cfg.get_bool("syslog_header")),
        max_tracked_(static_cast<std::size_t>(cfg.get_int("max_tracked_flows"))),
        hostname_(ctx.hostname),
        log_(get_logger("backend.udp_firefly")),
        // One table per origin: observed flows forwarded to the collector cannot evict a local
        // flow's start, nor end it by sharing its 5-tuple.
        starts_{StartTimes(max_tracked_), StartTimes(max_tracked_), StartTimes(max_tracked_)} {
    route_.collector = !collector_text_.empty();
    route_.forward_observed = cfg.get_bool("forward_observed");
    if (route_.forward_observed && !route_.collector)
      throw ConfigError(
          "[backend.udp_firefly] forward_observed: needs collector (observed flows go nowhere "
          "else)");
    ip_discovery_ = cfg.get_bool("ip_discovery");
    stopping_ = ctx.stopping;
    discovery_.stun_servers = cfg.get_list("stun_servers");
    discovery_.public_ip4 = cfg.get("public_ip4");
    discovery_.public_ip6 = cfg.get("public_ip6");
    discovery_.timeout = std::chrono::milliseconds(cfg.get_int("stun_timeout_ms"));
    discovery_.attempts = static_cast<int>(cfg.get_int("stun_attempts"));
    if (cfg.get_bool("netlink"))
      enrich_.emplace(std::chrono::seconds(cfg.get_int("ongoing_interval")), max_tracked_);
    else if (cfg.get_int("ongoing_interval") > 0)
      throw ConfigError("[backend.udp_firefly] ongoing_interval: needs netlink = yes");
    auto& sent = prometheus::BuildCounter()
                     .Name("flowd_fireflies_sent_total")
                     .Help("Fireflies sent, by destination (the flow's peer or the collector)")
                     .Register(ctx.metrics);
    sent_flow_ = &sent.Add({{"destination", "flow"}});
    sent_collector_ = &sent.Add({{"destination", "collector"}});
    auto& errors = prometheus::BuildCounter()
                       .Name("flowd_firefly_send_errors_total")
                       .Help("Fireflies that could not be sent, by destination")
                       .Register(ctx.metrics);
    errors_flow_ = &errors.Add({{"destination", "flow"}});
    errors_collector_ = &errors.Add({{"destination", "collector"}});
    auto& suppressed =
        prometheus::BuildCounter()
            .Name("flowd_fireflies_suppressed_total")
            .Help(
                "Fireflies not sent because of the flow's origin, by origin and reason: "
                "flow_address, forward_observed, no_collector")
            .Register(ctx.metrics);
    // Every combination that can happen exists from the start, at 0: the set is closed.
    for (FlowOrigin o : {FlowOrigin::kRemote, FlowOrigin::kObserved})
      for (auto r : {SuppressReason::kFlowAddress, SuppressReason::kForwardObserved,
                     SuppressReason::kNoCollector})
        if (o == FlowOrigin::kObserved || r != SuppressReason::kForwardObserved)
          suppressed_[static_cast<std::size_t>(o)][static_cast<std::size_t>(r)] = &suppressed.Add(
              {{"origin", std::string(to_string(o))}, {"reason", std::string(to_string(r))}});
  }

  ~UdpFirefly() override {
    if (fd4_ >= 0) ::close(fd4_);
    if (fd6_ >= 0) ::close(fd6_);
  }

  void start() override {
    if (enrich_) enrich_->open();
    fd4_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd4_ < 0) throw std::system_error(errno, std::generic_category(), "socket(AF_INET)");
    fd6_ = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd6_ < 0)
      log_->warn("no IPv6 socket ({}): IPv6 fireflies will count as send errors",
                 std::strerror(errno));
    if (!collector_text_.empty()) {
      auto ep = net::parse_endpoint(collector_text_, port_);
      if (!ep)
        throw std::runtime_error("[backend.udp_firefly] collector: cannot parse " +
                                 collector_text_);
      collector_ep_ = *ep;
      resolve_collector();
    }
    log_->info("sending fireflies to each flow's destination port {}{}", port_,
               collector_text_.empty() ? "" : ", copies to " + collector_ep_.to_string());
    if (ip_discovery_) discover();
  }

  void reloaded() override {
    if (ip_discovery_) discover();
  }

  // One sendmmsg() per family per batch: the kernel's per-datagram cost stays, the syscalls go.
  void run(std::stop_token stop, EventQueue& in) override {
    std::vector<FlowID> batch;
    if (enrich_ && enrich_->ongoing_interval().count() > 0) return run_with_ongoing(stop, in);
    while (in.pop_batch(batch, kBatch, stop)) {
      for (const auto& f : batch) handle(f);
      flush();
    }
  }

  void handle(const FlowID& flow) override {
    FireflyRoute route = route_firefly(flow.origin, route_);
    count_withheld(flow.origin, route);
    // Nothing to send, nothing to remember: no start time, no netlink lookup, no ongoing timer.
    if (!route.sends()) return;
    if (flow.origin == FlowOrigin::kRemote && flow.firefly_json) {
      relay(flow);
      return;
    }
    const bool local = flow.origin == FlowOrigin::kLocal;
    FireflyFields f;
    f.hostname = hostname_;
    f.application = "flowd-cpp v" FLOWD_VERSION;
    f.syslog_header = syslog_header_;
    f.now = Clock::now();
    f.start_time = starts_[static_cast<std::size_t>(flow.origin)].on_event(flow, f.now);
    // This host's addresses and sockets are only in its own flows: an observed flow keeps the
    // addresses the router exported, and gets no tcp_info (nor ongoing fireflies) from this host.
    if (local && ip_discovery_) {
      std::lock_guard lock(mapping_mu_);
      if (auto p = mapping_.public_for(flow.src)) f.src_override = p->to_string();
      if (auto p = mapping_.public_for(flow.dst)) f.dst_override = p->to_string();
    }
    if (const auto& fixed = flow.family() == AF_INET6 ? ip6_src_ : ip4_src_;
        local && !fixed.empty())
      f.src_override = fixed;
    if (local && enrich_) f.netlink = enrich_->on_event(flow);
    auto& msg = pending_msgs_.emplace_back(build_firefly(flow, f));
    if (log_->should_log(spdlog::level::debug)) log_->debug("firefly {}", msg);
    std::size_t index = pending_msgs_.size() - 1;
    if (route.to_flow) to_flow(flow, index);
    if (route.to_collector) to_collector(index);
    if (pending_msgs_.size() >= kBatch) flush();
  }

  void stop() override { flush(); }

 private:
  void count_withheld(FlowOrigin origin, const FireflyRoute& route) {
    auto o = static_cast<std::size_t>(origin);
    for (auto reason : {route.flow_withheld, route.collector_withheld})
      if (reason && o < kFlowOrigins)
        if (auto* c = suppressed_[o][static_cast<std::size_t>(*reason)]) c->Increment();
  }

  void to_flow(const FlowID& flow, std::size_t index) {
    Destination d;
    if (flow.family() == AF_INET6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&d.addr);
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(port_);
      std::memcpy(&s6->sin6_addr, flow.dst.bytes.data(), 16);
      d.len = sizeof(sockaddr_in6);
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&d.addr);
      s4->sin_family = AF_INET;
      s4->sin_port = htons(port_);
      std::memcpy(&s4->sin_addr, flow.dst.bytes.data(), 4);
      d.len = sizeof(sockaddr_in);
    }
    pending_.push_back({index, d, false});
  }

  // Blocks for the STUN round trips (on the daemon's reload thread, not its signal loop; cut short
  // when the daemon stops); fireflies meanwhile use the previous mapping.
  void discover() {
    AddressMapping m = discover_addresses(discovery_, *log_, stopping_);
    std::lock_guard lock(mapping_mu_);
    mapping_ = m;
  }

  void to_collector(std::size_t index) {
    if (!collector_ && std::chrono::steady_clock::now() - last_resolve_ > std::chrono::seconds(30))
      resolve_collector();
    if (collector_)
      pending_.push_back({index, *collector_, true});
    else
      errors_collector_->Increment();
  }

  // A firefly received by the firefly plugin goes to the collector only (route_firefly), its fields
  // unchanged.
  void relay(const FlowID& flow) {
    FireflyFields f;
    f.hostname = hostname_;
    f.syslog_header = syslog_header_;
    f.now = Clock::now();
    pending_msgs_.emplace_back(build_relayed_firefly(*flow.firefly_json, f));
    to_collector(pending_msgs_.size() - 1);
    if (pending_msgs_.size() >= kBatch) flush();
  }

  // As run(), and every ongoing_interval one sock_diag dump turns into ongoing fireflies.
  void run_with_ongoing(std::stop_token stop, EventQueue& in) {
    std::vector<FlowID> batch;
    auto next = std::chrono::steady_clock::now() + enrich_->ongoing_interval();
    while (in.pop_batch_until(batch, kBatch, stop, next)) {
      for (const auto& f : batch) handle(f);
      if (std::chrono::steady_clock::now() >= next) {
        batch.clear();
        enrich_->ongoing_events(batch);
        for (const auto& f : batch) handle(f);
        next = std::chrono::steady_clock::now() + enrich_->ongoing_interval();
      }
      flush();
    }
  }

  void resolve_collector() {
    last_resolve_ = std::chrono::steady_clock::now();
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(collector_ep_.port);
    int rc = ::getaddrinfo(collector_ep_.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0 || !res) {
      log_->warn("cannot resolve collector {}: {}; will retry", collector_ep_.host,
                 ::gai_strerror(rc));
      return;
    }
    Destination d;
    std::memcpy(&d.addr, res->ai_addr, res->ai_addrlen);
    d.len = res->ai_addrlen;
    ::freeaddrinfo(res);
    collector_ = d;
  }

  void flush() {
    for (int family : {AF_INET, AF_INET6}) {
      int fd = family == AF_INET6 ? fd6_ : fd4_;
      std::vector<mmsghdr> hdrs;
      std::vector<iovec> iovs;
      std::vector<const Pending*> which;
      hdrs.reserve(pending_.size());
      iovs.reserve(pending_.size());
      for (auto& p : pending_) {
        if (p.dest.addr.ss_family != family) continue;
        auto& msg = pending_msgs_[p.msg];
        iovs.push_back({msg.data(), msg.size()});
        mmsghdr h{};
        h.msg_hdr.msg_name = const_cast<sockaddr_storage*>(&p.dest.addr);
        h.msg_hdr.msg_namelen = p.dest.len;
        hdrs.push_back(h);
        which.push_back(&p);
      }
      for (std::size_t i = 0; i < hdrs.size(); ++i) {
        hdrs[i].msg_hdr.msg_iov = &iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
      }
      std::size_t done = 0;
      while (done < hdrs.size()) {
        int n = fd < 0 ? -1
                       : ::sendmmsg(fd, hdrs.data() + done,
                                    static_cast<unsigned>(hdrs.size() - done), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          // The datagram at `done` failed; count it and go on with the rest.
          int err = fd < 0 ? EAFNOSUPPORT : errno;
          (which[done]->collector ? errors_collector_ : errors_flow_)->Increment();
          std::uint64_t held = 0;
          if (limiter_.allow(held))
            log_->warn("sending a firefly failed: {}{}", std::strerror(err),
                       held ? fmt::format(" ({} more send errors not logged)", held) : "");
          ++done;
          continue;
        }
        for (int k = 0; k < n; ++k)
          (which[done + k]->collector ? sent_collector_ : sent_flow_)->Increment();
        done += static_cast<std::size_t>(n);
      }
    }
    pending_.clear();
    pending_msgs_.clear();
  }

  struct Pending {
    std::size_t msg;
    Destination dest;
    bool collector;
  };
  static constexpr std::size_t kBatch = 64;
  std::vector<std::string> pending_msgs_;
  std::vector<Pending> pending_;

  std::uint16_t port_;
  std::string collector_text_;
  net::Endpoint collector_ep_;
  std::optional<Destination> collector_;
  std::chrono::steady_clock::time_point last_resolve_{};
  std::string ip4_src_, ip6_src_;
  bool syslog_header_;
  std::size_t max_tracked_;
  std::string hostname_;
  std::shared_ptr<spdlog::logger> log_;
  int fd4_ = -1, fd6_ = -1;
  std::optional<TcpEnrichment> enrich_;
  std::array<StartTimes, kFlowOrigins> starts_;  // by origin
  RouteOptions route_;
  prometheus::Counter *sent_flow_, *sent_collector_, *errors_flow_, *errors_collector_;
  // By origin and reason; null for combinations that cannot happen.
  std::array<std::array<prometheus::Counter*, kSuppressReasons>, kFlowOrigins> suppressed_{};
  LogLimiter limiter_;
  bool ip_discovery_ = false;
  IpDiscoveryOptions discovery_;
  std::stop_token stopping_;  // the daemon's: STUN gives up when it stops
  std::mutex mapping_mu_;
  AddressMapping mapping_;
};

std::unique_ptr<Backend> create(const Section& cfg, Context& ctx) {
  return std::make_unique<UdpFirefly>(cfg, ctx);
}

}  // namespace

const BackendInfo& backend_info() {
  static const BackendInfo info{"udp_firefly",
                                "UDP fireflies (syslog + JSON) to each flow's peer and a collector",
                                kKeys, create};
  return info;
}

}  // namespace flowd::udp_firefly
