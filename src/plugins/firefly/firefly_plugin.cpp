// SPDX-License-Identifier: Apache-2.0
#include "plugins/firefly/firefly_plugin.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstring>

#include "flowd/log.hpp"
#include "firefly/firefly_parser.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/stop_fd.hpp"
#include "plugins/netflow/flow_rules.hpp"

namespace flowd::firefly {
namespace {

constexpr KeySpec kKeys[] = {
    {"host", KeyType::kString, "0.0.0.0", "address to listen on; `::` takes IPv4 and IPv6",
     "FIREFLY_LISTENER_HOST"},
    {"port", KeyType::kInt, "10514", "UDP port to listen on", "FIREFLY_LISTENER_PORT", 1, 65535},
    {"allow", KeyType::kList, "",
     "networks (CIDR, or single addresses) allowed to send fireflies; empty: any (others: reason "
     "not_allowed)"},
    {"max_size",
     KeyType::kInt,
     "16384",
     "larger datagrams are rejected (reason oversized)",
     {},
     512,
     65507},
    {"rcvbuf",
     KeyType::kInt,
     "8388608",
     "UDP receive buffer in bytes (SO_RCVBUF)",
     {},
     65536,
     1073741824},
};

struct Network {
  IpAddress prefix;
  unsigned length = 0;
};

std::optional<Network> parse_network(const std::string& text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(std::string_view(text).substr(0, slash));
  if (!addr) return std::nullopt;
  Network n{*addr, addr->is_v4() ? 32u : 128u};
  if (slash != std::string::npos) {
    auto len = std::string_view(text).substr(slash + 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), v);
    if (len.empty() || ec != std::errc() || p != len.data() + len.size() || v > n.length)
      return std::nullopt;
    n.length = v;
  }
  return n;
}

// The sender as an IpAddress; IPv4-mapped senders on a `::` socket count as IPv4.
IpAddress sender_of(const sockaddr_storage& ss, std::uint16_t& port) {
  IpAddress a;
  if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    port = ntohs(s6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), reinterpret_cast<const std::uint8_t*>(&s6->sin6_addr) + 12, 4);
    } else {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), &s6->sin6_addr, 16);
    }
  } else {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    port = ntohs(s4->sin_port);
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &s4->sin_addr, 4);
  }
  return a;
}

class FireflyPlugin final : public Plugin {
 public:
  FireflyPlugin(const Section& cfg, Context& ctx)
      : host_(cfg.get("host")),
        port_(static_cast<std::uint16_t>(cfg.get_int("port"))),
        max_size_(static_cast<std::size_t>(cfg.get_int("max_size"))),
        rcvbuf_(static_cast<int>(cfg.get_int("rcvbuf"))),
        log_(get_logger("plugin.firefly")) {
    for (const auto& text : cfg.get_list("allow")) {
      auto n = parse_network(text);
      if (!n)
        throw ConfigError("[plugin.firefly] allow: '" + text +
                          "' is not an address or CIDR network");
      allow_.push_back(*n);
    }
    received_ = &prometheus::BuildCounter()
                     .Name("flowd_firefly_received_total")
                     .Help("Datagrams received by the firefly listener, accepted or not")
                     .Register(ctx.metrics)
                     .Add({});
    auto& rejected = prometheus::BuildCounter()
                         .Name("flowd_firefly_rejected_total")
                         .Help("Datagrams the firefly listener dropped, by reason")
                         .Register(ctx.metrics);
    for (std::size_t i = 0; i < kRejectReasonCount; ++i)
      rejected_[i] =
          &rejected.Add({{"reason", std::string(to_string(static_cast<RejectReason>(i)))}});
  }

  ~FireflyPlugin() override { close_fd(); }

  void start() override {
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string where = (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" +
                        std::to_string(port_);
    if (int rc = getaddrinfo(host_.empty() ? nullptr : host_.c_str(), std::to_string(port_).c_str(),
                             &hints, &res);
        rc != 0)
      throw std::runtime_error("[plugin.firefly] cannot resolve " + where + ": " +
                               gai_strerror(rc));
    fd_ = ::socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1, zero = 0;
    if (fd_ >= 0) {
      setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      // "::" must take IPv4 too, whatever net.ipv6.bindv6only says.
      if (res->ai_family == AF_INET6)
        setsockopt(fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf_, sizeof rcvbuf_) != 0)
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf_, sizeof rcvbuf_);
    }
    if (fd_ < 0 || ::bind(fd_, res->ai_addr, res->ai_addrlen) != 0) {
      int err = errno;
      freeaddrinfo(res);
      close_fd();
      throw std::system_error(err, std::generic_category(),
                              "[plugin.firefly] cannot listen on UDP " + where);
    }
    freeaddrinfo(res);
    log_->info("receiving fireflies on UDP {}{}", where,
               allow_.empty() ? "" : fmt::format(" from {} allowed networks", allow_.size()));
  }

  void run(std::stop_token stop, Publisher& out) override {
    StopFd stopfd(stop);
    std::array<pollfd, 2> fds{{{fd_, POLLIN, 0}, {stopfd.fd(), POLLIN, 0}}};
    buffers_.assign(kBatch, std::vector<char>(max_size_ + 1));
    while (!stop.stop_requested()) {
      int n;
      {
        WaitingScope waiting;
        n = ::poll(fds.data(), fds.size(), -1);
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::system_error(errno, std::generic_category(), "poll");
      if (fds[1].revents) break;
      if (fds[0].revents) drain(out);
    }
  }

  void stop() override { close_fd(); }

 private:
  static constexpr unsigned kBatch = 64;

  void drain(Publisher& out) {
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    std::array<sockaddr_storage, kBatch> from{};
    // Bounded so that a flood cannot keep this thread from seeing the stop request.
    for (int round = 0; round < 64; ++round) {
      for (unsigned i = 0; i < kBatch; ++i) {
        iov[i] = {buffers_[i].data(), buffers_[i].size()};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      }
      int n = recvmmsg(fd_, msgs.data(), kBatch, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (n <= 0) return;
      // The whole recvmmsg() batch goes to the bus in one hand-over.
      flows_.clear();
      received_->Increment(n);
      for (int i = 0; i < n; ++i) {
        auto k = static_cast<std::size_t>(i);
        std::size_t len = msgs[k].msg_len;
        bool truncated = (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) != 0 || len > max_size_;
        handle(std::string_view(buffers_[k].data(), std::min(len, buffers_[k].size())), len,
               truncated, from[k]);
      }
      out.publish(flows_);
      if (static_cast<unsigned>(n) < kBatch) return;
    }
  }

  void handle(std::string_view data, std::size_t real_len, bool too_big,
              const sockaddr_storage& from) {
    std::uint16_t port = 0;
    IpAddress sender = sender_of(from, port);
    if (!allowed(sender)) {
      reject(RejectReason::kNotAllowed, sender, port, real_len, "sender is not in allow");
      return;
    }
    if (too_big) {
      reject(RejectReason::kOversized, sender, port, real_len,
             fmt::format("more than {} bytes", max_size_));
      return;
    }
    auto r = parse_firefly(data, max_size_);
    if (!r.ok) {
      reject(r.reason, sender, port, real_len, r.detail);
      return;
    }
    r.flow.firefly_json = std::make_shared<const std::string>(r.json);
    flows_.push_back(std::move(r.flow));
  }

  bool allowed(const IpAddress& a) const {
    if (allow_.empty()) return true;
    for (const auto& n : allow_)
      if (netflow::prefix_contains(n.prefix, n.length, a)) return true;
    return false;
  }

  void reject(RejectReason reason, const IpAddress& sender, std::uint16_t port, std::size_t len,
              const std::string& detail) {
    rejected_[static_cast<std::size_t>(reason)]->Increment();
    std::uint64_t held = 0;
    if (limiter_.allow(held))
      log_->warn("firefly from {} port {} ({} bytes) dropped: {}: {}{}", sender.to_string(), port,
                 len, to_string(reason), detail,
                 held ? fmt::format(" ({} more not logged)", held) : "");
  }

  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::vector<FlowID> flows_;  // what one receive batch produced, for the bus
  std::string host_;
  std::uint16_t port_;
  std::size_t max_size_;
  int rcvbuf_;
  std::vector<Network> allow_;
  std::shared_ptr<spdlog::logger> log_;
  int fd_ = -1;
  std::vector<std::vector<char>> buffers_;
  prometheus::Counter* received_;
  std::array<prometheus::Counter*, kRejectReasonCount> rejected_{};
  LogLimiter limiter_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* /*name*/) {
  return std::make_unique<FireflyPlugin>(cfg, ctx);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "firefly",
      "UDP firefly listener (Python flowd, flowd-go, XRootD); relays with udp_firefly's collector",
      kKeys, create};
  return info;
}

}  // namespace flowd::firefly
