// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/firefly_sender.hpp"

#include <prometheus/counter.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace flowd::udp_firefly {

FireflySender::FireflySender(std::uint16_t port, std::optional<net::Endpoint> collector,
                             SendCounters counters, std::shared_ptr<spdlog::logger> log)
    : port_(port),
      collector_ep_(std::move(collector)),
      counters_(counters),
      log_(std::move(log)),
      messages_(kBatch) {
  pending_.reserve(2 * kBatch);
  hdrs_.reserve(2 * kBatch);
  iovs_.reserve(2 * kBatch);
  which_.reserve(2 * kBatch);
}

void FireflySender::open() {
  fd4_ = checked_fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0),
                    "socket(AF_INET)");
  fd6_.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd6_)
    log_->warn("no IPv6 socket ({}): IPv6 fireflies will count as send errors",
               std::strerror(errno));
  if (collector_ep_) resolve_collector();
}

std::string& FireflySender::next_message() {
  std::string& m = messages_[used_];
  m.clear();
  return m;
}

void FireflySender::queue(const FlowID* to_peer, bool to_collector) {
  const auto msg = static_cast<std::uint32_t>(used_++);
  if (to_peer) pending_.push_back({msg, false, net::SocketAddress::of(to_peer->dst, port_)});
  if (to_collector) {
    if (!collector_ && std::chrono::steady_clock::now() - last_resolve_ > std::chrono::seconds(30))
      resolve_collector();
    if (collector_)
      pending_.push_back({msg, true, *collector_});
    else
      counters_.errors_collector->Increment();
  }
  if (used_ == kBatch) flush();
}

void FireflySender::resolve_collector() {
  last_resolve_ = std::chrono::steady_clock::now();
  try {
    collector_ = net::resolve(collector_ep_->host, collector_ep_->port).front();
  } catch (const std::runtime_error& e) {
    log_->warn("collector: {}; will retry", e.what());
  }
}

void FireflySender::flush() {
  send_family(AF_INET);
  send_family(AF_INET6);
  pending_.clear();
  used_ = 0;
}

void FireflySender::send_family(int family) {
  const int fd = family == AF_INET6 ? fd6_.get() : fd4_.get();
  hdrs_.clear();
  iovs_.clear();
  which_.clear();
  for (const auto& p : pending_) {
    if (p.to.family() != family) continue;
    std::string& msg = messages_[p.msg];
    iovs_.push_back({msg.data(), msg.size()});
    which_.push_back(&p);
  }
  // iovs_ has its final size now: the headers may point into it.
  for (std::size_t i = 0; i < iovs_.size(); ++i) {
    mmsghdr h{};
    h.msg_hdr.msg_name = const_cast<sockaddr*>(which_[i]->to.get());
    h.msg_hdr.msg_namelen = which_[i]->to.length;
    h.msg_hdr.msg_iov = &iovs_[i];
    h.msg_hdr.msg_iovlen = 1;
    hdrs_.push_back(h);
  }
  std::size_t done = 0;
  while (done < hdrs_.size()) {
    int n =
        fd < 0 ? -1
               : ::sendmmsg(fd, hdrs_.data() + done, static_cast<unsigned>(hdrs_.size() - done), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // The datagram at `done` failed; count it and go on with the rest.
      const int err = fd < 0 ? EAFNOSUPPORT : errno;
      (which_[done]->collector ? counters_.errors_collector : counters_.errors_flow)->Increment();
      limited_warn(*log_, limiter_, "sending a firefly failed: {}", std::strerror(err));
      ++done;
      continue;
    }
    std::size_t to_collector = 0;
    for (int k = 0; k < n; ++k) to_collector += which_[done + k]->collector;
    if (to_collector) counters_.sent_collector->Increment(static_cast<double>(to_collector));
    if (const auto to_flow = static_cast<std::size_t>(n) - to_collector)
      counters_.sent_flow->Increment(static_cast<double>(to_flow));
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace flowd::udp_firefly
