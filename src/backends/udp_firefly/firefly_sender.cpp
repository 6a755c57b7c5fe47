// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/firefly_sender.hpp"

#include <prometheus/counter.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace flowd::udp_firefly {

FireflySender::FireflySender(std::uint16_t port, std::vector<net::Endpoint> collectors,
                             std::chrono::milliseconds resolve_interval, SendCounters counters,
                             std::shared_ptr<spdlog::logger> log)
    : port_(port),
      counters_(std::move(counters)),
      resolver_(collectors, resolve_interval, counters_.resolve_failures, log),
      collectors_(collectors.size()),
      shared_(collectors.size(), false),
      log_(std::move(log)),
      messages_(kBatch) {
  const std::size_t per_message = 1 + collectors.size();
  pending_.reserve(per_message * kBatch);
  hdrs_.reserve(per_message * kBatch);
  iovs_.reserve(per_message * kBatch);
  which_.reserve(per_message * kBatch);
}

void FireflySender::open() {
  fd4_ = checked_fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0),
                    "socket(AF_INET)");
  fd6_.reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd6_)
    log_->warn("no IPv6 socket ({}): IPv6 fireflies will count as send errors",
               std::strerror(errno));
  resolver_.resolve_all_now();
}

std::string& FireflySender::next_message() {
  // A new batch picks up what the resolver found meanwhile (one atomic load when nothing changed).
  if (used_ == 0) refresh_collectors();
  std::string& m = messages_[used_];
  m.clear();
  return m;
}

void FireflySender::refresh_collectors() {
  if (!resolver_.changed(generation_, collectors_)) return;
  for (std::size_t i = 0; i < collectors_.size(); ++i) {
    shared_[i] = false;
    for (std::size_t j = 0; j < i && collectors_[i] && !shared_[i]; ++j)
      shared_[i] = collectors_[j] && same_destination(*collectors_[j], *collectors_[i]);
  }
}

void FireflySender::queue(const FlowID* to_peer, bool to_collector) {
  const auto msg = static_cast<std::uint32_t>(used_++);
  if (to_peer) pending_.push_back({msg, kToFlow, net::SocketAddress::of(to_peer->dst, port_)});
  if (to_collector)
    for (std::size_t i = 0; i < collectors_.size(); ++i) {
      const auto c = static_cast<std::uint16_t>(i);
      if (shared_[i]) continue;  // an earlier collector at the same address gets it
      if (collectors_[i]) {
        pending_.push_back({msg, c, *collectors_[i]});
      } else {
        // Not looked up successfully yet: counted as an error, and the resolver asked again.
        count_error({msg, c, {}});
        resolver_.request(i);
      }
    }
  if (used_ == kBatch) flush();
}

void FireflySender::count_error(const Pending& p) {
  if (p.collector == kToFlow) {
    counters_.errors_flow->Increment();
    return;
  }
  counters_.errors_collector->Increment();
  if (p.collector < counters_.errors_per_collector.size())
    counters_.errors_per_collector[p.collector]->Increment();
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
      const Pending& p = *which_[done];
      count_error(p);
      limited_warn(*log_, limiter_, "sending a firefly failed: {} (to {})", std::strerror(err),
                   p.to.to_string());
      // The collector's address may be stale (a DNS change): look it up again soon.
      if (p.collector != kToFlow) resolver_.request(p.collector);
      ++done;
      continue;
    }
    std::size_t to_collector = 0;
    for (int k = 0; k < n; ++k) {
      const Pending& p = *which_[done + static_cast<std::size_t>(k)];
      if (p.collector == kToFlow) continue;
      ++to_collector;
      if (p.collector < counters_.sent_per_collector.size())
        counters_.sent_per_collector[p.collector]->Increment();
    }
    if (to_collector) counters_.sent_collector->Increment(static_cast<double>(to_collector));
    if (const auto to_flow = static_cast<std::size_t>(n) - to_collector)
      counters_.sent_flow->Increment(static_cast<double>(to_flow));
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace flowd::udp_firefly
