// SPDX-License-Identifier: Apache-2.0
#include "plugins/scanner/connection_watch.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <system_error>
#include <unordered_set>

#include "common/net/local_addresses.hpp"
#include "flowd/component.hpp"
#include "flowd/daemon_status.hpp"
#include "flowd/reload_shelf.hpp"
#include "netlink/sock_diag.hpp"

namespace flowd::scanner {
namespace {

using net::LocalAddresses;
using net::unmapped;

std::string flow_text(const FlowID& f) {
  return fmt::format("{} {} {} {} {} {}/{}", to_string(f.protocol), f.src.to_string(), f.src_port,
                     f.dst.to_string(), f.dst_port, f.experiment, f.activity);
}

}  // namespace

std::string_view to_string(Expiry e) {
  switch (e) {
    case Expiry::kConnectionClosed:
      return "connection_closed";
    case Expiry::kConnectionNotFound:
      return "connection_not_found";
  }
  return "connection_closed";
}

FlowKey ReportedConnections::key_of(const FlowID& f) {
  return {f.protocol, IpAddress{}, unmapped(f.dst), f.src_port, f.dst_port};
}

void ReportedConnections::note(std::span<const FlowID> published) {
  for (const auto& f : published) {
    if (f.protocol != Protocol::kTcp || f.origin != FlowOrigin::kLocal) continue;
    if (f.state == FlowState::kStart) {
      // A repeated start keeps what the checks found.
      auto [e, inserted] = table_.emplace(key_of(f), Entry{f});
      if (!inserted) e->start = f;
    } else if (f.state == FlowState::kEnd) {
      table_.erase(key_of(f));
    }
  }
}

void ReportedConnections::keep_only(std::span<const FlowID> starts) {
  std::unordered_set<FlowKey, FlowKeyHash> keep;
  for (const auto& f : starts) keep.insert(key_of(f));
  table_.erase_if([&](const FlowKey& k, Entry&) { return !keep.contains(k); });
}

void ReportedConnections::saw_open(const IpAddress& local, std::uint16_t local_port,
                                   const IpAddress& remote, std::uint16_t remote_port) {
  // The tool named this host's end first (the key's peer is `remote`), or the peer first (its key's
  // "peer" is this host's address).
  Entry* e =
      table_.find(FlowKey{Protocol::kTcp, IpAddress{}, unmapped(remote), local_port, remote_port});
  if (e) e->found_at = check_;
  e = table_.find(FlowKey{Protocol::kTcp, IpAddress{}, unmapped(local), remote_port, local_port});
  if (e) e->found_at = check_;
}

void ReportedConnections::finish_check(TimePoint now,
                                       const std::function<bool(const IpAddress&)>& is_local,
                                       std::vector<Expired>& out) {
  table_.erase_if([&](const FlowKey&, Entry& e) {
    if (e.found_at == check_) {
      e.misses = 0;
      return false;
    }
    if (e.misses < 255) ++e.misses;
    Expiry why;
    if (e.found_at != 0)
      why = Expiry::kConnectionClosed;
    else if (e.misses >= 2 && (is_local(e.start.src) || is_local(e.start.dst)))
      why = Expiry::kConnectionNotFound;
    else
      return false;
    FlowID end = e.start;
    end.state = FlowState::kEnd;
    end.end_time = now;
    out.push_back({std::move(end), why});
    return true;
  });
}

ConnectionWatch::ConnectionWatch(const char* plugin, std::chrono::seconds interval,
                                 prometheus::Registry& metrics, std::shared_ptr<spdlog::logger> log)
    : plugin_(plugin), interval_(interval), log_(std::move(log)) {
  auto& family = prometheus::BuildCounter()
                     .Name("flowd_explicit_flows_expired_total")
                     .Help(
                         "TCP flows np_api or the api reported that flowd ended itself because "
                         "their connection was no longer open, by reason")
                     .Register(metrics);
  for (std::size_t i = 0; i < kExpiryCount; ++i)
    expired_[i] = &family.Add(
        {{"plugin", plugin}, {"reason", std::string(to_string(static_cast<Expiry>(i)))}});
  checks_ = &prometheus::BuildCounter()
                 .Name("flowd_explicit_flow_checks_total")
                 .Help(
                     "sock_diag dumps np_api or the api made every check_interval to check the "
                     "TCP flows they follow")
                 .Register(metrics)
                 .Add({{"plugin", plugin}});
  if (interval_.count() == 0) return;
  timer_ =
      checked_fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), "timerfd_create");
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(interval_.count());
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) != 0)
    throw std::system_error(errno, std::generic_category(), "timerfd_settime");
}

ConnectionWatch::~ConnectionWatch() = default;

void ConnectionWatch::publish(Publisher& out, std::span<const FlowID> in) {
  std::lock_guard lock(mu_);
  // A line that names the peer first (its source not this namespace's, its destination one of
  // it) is the same connection as the other way round: it is turned so that this host's end comes
  // first, as the connection plugins report it and as the marker keys it (egress: the peer, then
  // the ports). Otherwise the arbiter took it for a second connection, beside the kernel plugin's
  // report, and the marker's entry for it never matched a packet (try15g 6). Addresses of neither
  // end this namespace's (a container's flow) are left as they are.
  const auto now = std::chrono::steady_clock::now();
  if (!local_ || now - local_read_ > std::chrono::seconds(1)) {
    local_.emplace();
    local_read_ = now;
  }
  turned_.assign(in.begin(), in.end());
  for (auto& f : turned_)
    if (f.origin == FlowOrigin::kLocal && !local_->contains(f.src) && local_->contains(f.dst)) {
      std::swap(f.src, f.dst);
      std::swap(f.src_port, f.dst_port);
    }
  out.publish(turned_);
  if (timer_) flows_.note(turned_);
}

namespace {

// What a plugin's checks found, between the instance a reload stops and its successor.
struct ShelvedChecks final : ShelfItem {
  explicit ShelvedChecks(ReportedConnections f) : flows(std::move(f)) {}
  ReportedConnections flows;
};

std::string shelf_key(const char* plugin) {
  return fmt::format("plugin.{}.checks", plugin);
}

}  // namespace

void ConnectionWatch::shelve(ReloadShelf* shelf) {
  std::lock_guard lock(mu_);
  if (!shelf || !timer_ || flows_.size() == 0) return;
  shelf->put(shelf_key(plugin_), std::make_unique<ShelvedChecks>(std::move(flows_)));
  flows_ = ReportedConnections();
}

void ConnectionWatch::take_shelved(ReloadShelf* shelf) {
  if (!shelf) return;
  auto item = shelf->take(shelf_key(plugin_));
  auto* shelved = dynamic_cast<ShelvedChecks*>(item.get());
  std::lock_guard lock(mu_);
  if (shelved && timer_) predecessor_.emplace(std::move(shelved->flows));
}

std::size_t ConnectionWatch::inherit(DaemonStatus* status) {
  std::optional<ReportedConnections> predecessor;
  {
    std::lock_guard lock(mu_);
    predecessor.swap(predecessor_);
  }
  if (!timer_ || !status) return 0;
  std::vector<FlowID> starts;
  for (const auto& a : status->reported_flows(plugin_)) {
    if (a.key.protocol != Protocol::kTcp || a.origin != FlowOrigin::kLocal) continue;
    starts.push_back(start_event(a));
  }
  std::lock_guard lock(mu_);
  if (predecessor) {
    // Its checks' findings, on the flows the daemon still lists as the plugin's (the note below
    // keeps what the checks found of a flow it knew). The plugin calls this before it publishes:
    // nothing of this instance's is replaced.
    predecessor->keep_only(starts);
    flows_ = std::move(*predecessor);
  }
  flows_.note(starts);
  return flows_.size();
}

void ConnectionWatch::on_timer(Publisher& out) {
  std::uint64_t ticks = 0;
  [[maybe_unused]] auto r = ::read(timer_.get(), &ticks, sizeof ticks);
  check(out);
}

bool ConnectionWatch::list_sockets() {
  std::string error;
  try {
    if (!diag_) diag_ = std::make_unique<netlink::SockDiag>();
    netlink::DumpRequest req;
    req.states = (1u << netlink::kTcpEstablished) | (1u << netlink::kTcpFinWait1) |
                 (1u << netlink::kTcpFinWait2) | (1u << netlink::kTcpCloseWait) |
                 (1u << netlink::kTcpClosing) | (1u << netlink::kTcpLastAck);
    flows_.begin_check();
    if (diag_->dump(
            req,
            [&](const netlink::SockEntry& e, const netlink::TcpDetails*) {
              if (netlink::carries_data(e.state, e.inode))
                flows_.saw_open(e.local, e.local_port, e.remote, e.remote_port);
            },
            error))
      return true;
  } catch (const std::exception& e) {
    error = e.what();
  }
  // A check that could not list the sockets ends nothing: the next one tries again.
  limited_warn(*log_, error_limiter_,
               "cannot list the TCP sockets to check the {} reported flows: {}; none ended",
               flows_.size(), error);
  return false;
}

void ConnectionWatch::check(Publisher& out) {
  std::lock_guard lock(mu_);
  if (flows_.size() == 0) return;  // nothing to check: no dump
  checks_->Increment();
  if (!list_sockets()) return;
  std::optional<LocalAddresses> local;
  expired_now_.clear();
  flows_.finish_check(
      Clock::now(),
      [&](const IpAddress& a) {
        if (!local) local.emplace();
        return local->contains(a);
      },
      expired_now_);
  if (expired_now_.empty()) return;
  ends_.clear();
  for (auto& x : expired_now_) {
    expired_[static_cast<std::size_t>(x.reason)]->Increment();
    limited_warn(*log_, limiter_, "ended the {} flow {}: {}, and no end came for it ({})", plugin_,
                 flow_text(x.end),
                 x.reason == Expiry::kConnectionClosed
                     ? "its TCP connection closed"
                     : "two checks in a row found no open TCP connection of it",
                 to_string(x.reason));
    ends_.push_back(std::move(x.end));
  }
  out.publish(ends_);
}

}  // namespace flowd::scanner
