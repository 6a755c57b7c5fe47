// SPDX-License-Identifier: Apache-2.0
#include "plugins/firefly/firefly_plugin.hpp"

#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <array>
#include <optional>

#include "common/net/prefix.hpp"
#include "common/net/udp_listener.hpp"
#include "firefly/firefly_parser.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/reason_counters.hpp"
#include "flowd/stop_fd.hpp"
#include "plugins/firefly/firefly_listener_config.hpp"

namespace flowd::firefly {
namespace {

class FireflyPlugin final : public Plugin {
 public:
  FireflyPlugin(FireflyListenerConfig cfg, Context& ctx)
      : host_(std::move(cfg.host)),
        port_(cfg.port),
        max_size_(cfg.max_size),
        rcvbuf_(cfg.rcvbuf),
        allow_(std::move(cfg.allow)),
        log_(get_logger("plugin.firefly")),
        rejected_(ctx.metrics, "flowd_firefly_rejected_total",
                  "Datagrams the firefly listener dropped, by reason") {
    received_ = &prometheus::BuildCounter()
                     .Name("flowd_firefly_received_total")
                     .Help("Datagrams received by the firefly listener, accepted or not")
                     .Register(ctx.metrics)
                     .Add({});
  }

  ~FireflyPlugin() override { close_fd(); }

  void start() override {
    socket_ = net::UdpListener(host_, port_, {.rcvbuf = rcvbuf_, .owner = "[plugin.firefly] "});
    log_->info("receiving fireflies on UDP {}{}", socket_.local().to_string(),
               allow_.empty() ? "" : fmt::format(" from {} allowed networks", allow_.size()));
  }

  void run(std::stop_token stop, Publisher& out) override {
    StopFd stopfd(stop);
    std::array<pollfd, 2> fds{{{socket_.fd(), POLLIN, 0}, {stopfd.fd(), POLLIN, 0}}};
    if (!batch_) batch_.emplace(kBatch, max_size_);
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
    // Bounded so that a flood cannot keep this thread from seeing the stop request.
    for (int round = 0; round < 64; ++round) {
      // The whole recvmmsg() batch goes to the bus in one hand-over.
      flows_.clear();
      const std::size_t n =
          batch_->receive(socket_.fd(), [&](const net::Datagram& d) { handle(d); });
      if (n == 0) return;
      received_->Increment(static_cast<double>(n));
      out.publish(flows_);
      if (n < kBatch) return;
    }
  }

  void handle(const net::Datagram& d) {
    const IpAddress sender = d.sender.address();
    const std::uint16_t port = d.sender.port();
    if (!allowed(sender)) {
      reject(RejectReason::kNotAllowed, sender, port, d.length, "sender is not in allow");
      return;
    }
    if (d.truncated()) {
      reject(RejectReason::kOversized, sender, port, d.length,
             fmt::format("more than {} bytes", max_size_));
      return;
    }
    auto r = parse_firefly(
        std::string_view(reinterpret_cast<const char*>(d.payload.data()), d.payload.size()),
        max_size_);
    if (!r.ok) {
      reject(r.reason, sender, port, d.length, r.detail);
      return;
    }
    r.flow.firefly_json = std::make_shared<const std::string>(r.json);
    flows_.push_back(std::move(r.flow));
  }

  bool allowed(const IpAddress& a) const {
    if (allow_.empty()) return true;
    for (const auto& n : allow_)
      if (n.contains(a)) return true;
    return false;
  }

  void reject(RejectReason reason, const IpAddress& sender, std::uint16_t port, std::size_t len,
              const std::string& detail) {
    rejected_.add(reason);
    limited_warn(*log_, limiter_, "firefly from {} port {} ({} bytes) dropped: {}: {}",
                 sender.to_string(), port, len, to_string(reason), detail);
  }

  void close_fd() { socket_.close(); }

  std::vector<FlowID> flows_;  // what one receive batch produced, for the bus
  std::string host_;
  std::uint16_t port_;
  std::size_t max_size_;
  int rcvbuf_;
  std::vector<net::Prefix> allow_;
  std::shared_ptr<spdlog::logger> log_;
  net::UdpListener socket_;
  std::optional<net::DatagramBatch> batch_;  // allocated once, on the receive thread
  prometheus::Counter* received_;
  ReasonCounters<RejectReason, kRejectReasonCount> rejected_;
  LogLimiter limiter_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* /*name*/) {
  return std::make_unique<FireflyPlugin>(FireflyListenerConfig::from(cfg), ctx);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "firefly",
      "UDP firefly listener (Python flowd, flowd-go, XRootD); relays with udp_firefly's collector",
      config_keys(), create};
  return info;
}

}  // namespace flowd::firefly
