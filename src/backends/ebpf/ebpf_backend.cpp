// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/ebpf_backend.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdarg>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "backends/ebpf/ebpf_config.hpp"
#include "backends/ebpf/flow_map.hpp"
#include "backends/ebpf/kept_flows.hpp"
#include "backends/ebpf/left_hooks.hpp"
#include "backends/ebpf/link_watch.hpp"
#include "backends/ebpf/mark_policy.hpp"
#include "backends/ebpf/marker_lock.hpp"
#include "backends/ebpf/marker_record.hpp"
#include "backends/ebpf/stale_flows.hpp"
#include "backends/ebpf/tc_attachment.hpp"
#include "common/counted.hpp"
#include "common/owned_file.hpp"
#include "flowd/daemon_status.hpp"
#include "flowd/event_queue.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/reason_counters.hpp"
#include "flowd/reload_shelf.hpp"
#include "flowd/scitags_label.hpp"
#include "flowd/stop_fd.hpp"
#include "flowd_marker.h"
#include "flowd_marker.skel.h"

namespace flowd::ebpf {
namespace {

// Lock keys name what is marked, not how the configuration spells it: an interface by its index (an
// altname or a renamed link is the same interface), a pinned map by its directory's canonical path
// (`/a/./b` and a symlinked directory are the same file).
std::string interface_lock_key(const std::string& name) {
  unsigned index = ::if_nametoindex(name.c_str());
  return index ? "if:#" + std::to_string(index) : "if:" + name;
}

std::string pin_lock_key(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path);
  fs::path dir = fs::weakly_canonical(p.parent_path(), ec);
  return "pin:" + ((ec ? p.parent_path() : dir) / p.filename()).string();
}

// The names in `interfaces` of the marker running in this process (set at its start, cleared at its
// stop by the same instance). A reload's check does not refuse those that are gone for now (the
// running marker shows them as not attached): a reload of another section must not fail because a
// marked link is down; names a reload adds must exist.
std::mutex running_mu;
std::vector<std::string> running_names;
const void* running_owner = nullptr;

// Each name of `interfaces` (a pattern may match nothing yet) must exist in this network namespace,
// or be one the running marker was started with when `running_may_miss`; and two names must not be
// one interface (a name and its altname). Both are configuration errors, found alike by
// --check-config, the start and a reload. Throws ConfigError("[backend.ebpf] interfaces: ...").
void require_named_interfaces(const std::vector<std::string>& interfaces,
                              bool running_may_miss = false) {
  std::lock_guard lock(running_mu);
  for (const auto& n : interfaces)
    if (!is_interface_pattern(n) && ::if_nametoindex(n.c_str()) == 0 &&
        !(running_may_miss &&
          std::find(running_names.begin(), running_names.end(), n) != running_names.end()))
      throw ConfigError("[backend.ebpf] interfaces: no interface named '" + n +
                        "' in this network namespace (a name must exist at start; a pattern such "
                        "as '" +
                        n + "*' may match nothing yet)");
  for (auto it = interfaces.begin(); it != interfaces.end(); ++it)
    for (auto prev = interfaces.begin(); prev != it; ++prev)
      if (!is_interface_pattern(*it) && !is_interface_pattern(*prev) &&
          interface_lock_key(*prev) == interface_lock_key(*it))
        throw ConfigError("[backend.ebpf] interfaces: '" + *prev + "' and '" + *it +
                          "' are the same interface (an altname?): name it once");
}

// libbpf's messages (the verifier's log among them) go to our log, and the last ones are kept for
// the error message when loading fails.
std::mutex libbpf_mu;
std::string libbpf_tail;

int on_libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[4096];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  std::string line(
      buf, static_cast<std::size_t>(std::max(0, std::min(n, static_cast<int>(sizeof buf) - 1))));
  while (!line.empty() && line.back() == '\n') line.pop_back();
  {
    std::lock_guard lock(libbpf_mu);
    libbpf_tail += line + "\n";
    if (libbpf_tail.size() > 2000) libbpf_tail.erase(0, libbpf_tail.size() - 2000);
  }
  auto log = get_logger("bpf");
  // Expected answers are not news: an existing clsact qdisc (EEXIST is handled), and no filter of
  // ours on a hook (tc_attachment asks whether a stale one is there before it attaches, and the
  // kernel's extack for "none" is "Cannot find specified filter chain").
  // Nor is a missing clsact where the marker asks whether its filter is still there ("Parent Qdisc
  // doesn't exists": somebody removed it; the marker says so itself when it attaches again).
  const bool expected = line.find("Exclusivity flag on") != std::string::npos ||
                        line.find("Cannot find specified filter chain") != std::string::npos ||
                        line.find("Parent Qdisc doesn't exist") != std::string::npos;
  if (level == LIBBPF_WARN && !expected)
    log->warn("{}", line);
  else
    log->debug("{}", line);
  return 0;
}

// The capabilities a tc BPF program needs (kernel a17b53c4): CAP_BPF (or CAP_SYS_ADMIN) and
// CAP_NET_ADMIN.
std::string missing_capabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return {};
  auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1u; };
  std::string missing;
  if (!has(CAP_BPF) && !has(CAP_SYS_ADMIN)) missing += "CAP_BPF ";
  if (!has(CAP_NET_ADMIN)) missing += "CAP_NET_ADMIN ";
  if (!missing.empty()) missing.pop_back();
  return missing;
}

class MarkerStats : public prometheus::Collectable {
 public:
  MarkerStats(int stats_fd, int flows_fd)
      : fd_(stats_fd), flows_fd_(flows_fd), ncpu_(libbpf_num_possible_cpus()) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    static constexpr struct {
      __u32 index;
      const char* name;
      const char* help;
    } kStats[] = {
        {FLOWD_STAT_SEEN, "flowd_marker_packets_seen_total",
         "Packets the BPF marker ran on (egress)"},
        {FLOWD_STAT_MARKED, "flowd_marker_packets_marked_total",
         "Packets whose IPv6 flow label the marker wrote"},
        {FLOWD_STAT_PARSE_FAIL, "flowd_marker_parse_failures_total",
         "IPv6 packets whose headers the marker could not walk to the ports"},
    };
    std::vector<prometheus::MetricFamily> out;
    std::vector<__u64> values(static_cast<std::size_t>(std::max(ncpu_, 1)));
    for (const auto& s : kStats) {
      __u32 key = s.index;
      double sum = 0;
      if (bpf_map_lookup_elem(fd_, &key, values.data()) == 0)
        for (auto v : values) sum += static_cast<double>(v);
      prometheus::MetricFamily f;
      f.name = s.name;
      f.help = s.help;
      f.type = prometheus::MetricType::Counter;
      prometheus::ClientMetric m;
      m.counter.value = sum;
      f.metric.push_back(m);
      out.push_back(std::move(f));
    }
    // Counted in the map at scrape time: the kernel's LRU evicts without telling user space, so
    // counting starts and ends overstated it (22,052 flows in a map of 1,000).
    prometheus::MetricFamily flows;
    flows.name = "flowd_marker_flows";
    flows.help =
        "Flows in the marker's map (marked and not yet ended or evicted), counted at scrape time";
    flows.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric m;
    m.gauge.value = static_cast<double>(count_entries(flows_fd_));
    flows.metric.push_back(m);
    out.push_back(std::move(flows));
    return out;
  }

 private:
  int fd_;
  int flows_fd_;
  int ncpu_;
};

// flowd_marker_ignored_events_total{origin}: the events the marker does not act on because of their
// origin. Local events are never ignored, so there is no local series.
std::array<prometheus::Counter*, kFlowOrigins> ignored_counters(Context& ctx) {
  auto& fam =
      prometheus::BuildCounter()
          .Name("flowd_marker_ignored_events_total")
          .Help("Flow events the marker ignored because they were not seen on this host, by origin")
          .Register(ctx.metrics);
  std::array<prometheus::Counter*, kFlowOrigins> out{};
  for (FlowOrigin o : {FlowOrigin::kRemote, FlowOrigin::kObserved})
    out[static_cast<std::size_t>(o)] = &fam.Add({{"origin", std::string(to_string(o))}});
  return out;
}

// Why flows left the marker's map other than by their end or the kernel's LRU eviction (a closed
// set: flowd_marker_flows_dropped_total{reason}).
enum class DropReason { kResize };
constexpr std::size_t kDropReasons = 1;
std::string_view to_string(DropReason) {
  return "resize";
}

// What a marker stopped by a reload leaves for its successor (flowd/reload_shelf.hpp): the flow
// map, the filters still attached with the old program (the successor replaces the program in
// place, so the hook never goes unmarked), the locks and the record. Destroyed unclaimed (the
// reload dropped the marker, or the daemon stops), it detaches the filters and removes the record
// as a clean stop does.
// The marker's map key of a flow: destination address, both ports, protocol (flowd_marker.h).
flowd_flow_key map_key_of(const FlowKey& flow) {
  flowd_flow_key key;
  std::memset(&key, 0, sizeof key);  // padding included: the kernel hashes every byte
  std::memcpy(key.daddr, flow.dst.bytes.data(), 16);
  key.sport = htons(flow.src_port);
  key.dport = htons(flow.dst_port);
  key.proto = flow.protocol == Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
  return key;
}

// What the marker lends GET /v1/status and GET /v1/flows (flowd/daemon_status.hpp): the interfaces
// it is attached to (updated as they come and go), and lookups in its map through a descriptor of
// its own, so that it stays valid whatever the backend does.
class Probe final : public MarkerProbe {
 public:
  Probe(int map_fd, std::vector<MarkerInterface> interfaces, bool match_all,
        std::shared_ptr<const KeptFlows> kept, std::uint32_t carried_from)
      : map_(::fcntl(map_fd, F_DUPFD_CLOEXEC, 0)),
        interfaces_(std::move(interfaces)),
        match_all_(match_all),
        kept_(std::move(kept)),
        carried_from_(carried_from) {}
  std::vector<MarkerInterface> interfaces() const override {
    std::lock_guard lock(mu_);
    return interfaces_;
  }
  void set_interfaces(std::vector<MarkerInterface> interfaces) {
    std::lock_guard lock(mu_);
    interfaces_ = std::move(interfaces);
  }
  bool holds(const FlowKey& flow) const override {
    if (!carries_flow_label(flow)) return false;
    if (match_all_) return true;
    auto key = map_key_of(flow);
    std::uint32_t label = 0;
    return map_ && bpf_map_lookup_elem(map_.get(), &key, &label) == 0;
  }
  std::size_t entries() const override {
    return map_ ? static_cast<std::size_t>(count_entries(map_.get())) : 0;
  }
  int flow_map_fd() const override { return match_all_ || !map_ ? -1 : map_.get(); }
  std::vector<ActiveFlow> kept_flows() const override { return kept_->listed(); }
  std::size_t kept_flow_count() const override { return kept_->size(); }
  std::uint32_t carried_from() const override { return carried_from_; }

 private:
  UniqueFd map_;
  mutable std::mutex mu_;
  std::vector<MarkerInterface> interfaces_;
  bool match_all_;
  std::shared_ptr<const KeptFlows> kept_;
  std::uint32_t carried_from_;
};

// flowd_marker_interface_changes_total{change}: a closed set.
enum class InterfaceChange { kAttached, kDetached, kFailed };
std::array<prometheus::Counter*, 3> interface_change_counters(Context& ctx) {
  auto& fam = prometheus::BuildCounter()
                  .Name("flowd_marker_interface_changes_total")
                  .Help(
                      "Interfaces the marker attached to or detached from after start as they "
                      "appeared, went or gained/lost their global IPv6 address (failed: an "
                      "attach the kernel or another flowd's lock refused)")
                  .Register(ctx.metrics);
  return {&fam.Add({{"change", "attached"}}), &fam.Add({{"change", "detached"}}),
          &fam.Add({{"change", "failed"}})};
}

struct ShelvedMarker final : ShelfItem {
  UniqueFd map;
  std::shared_ptr<KeptFlows> kept;  // what a pinned map kept at the daemon's start, still listed
  std::vector<MarkerLock> locks;    // destroyed last: the filters go before the locks do
  std::vector<std::unique_ptr<TcAttachment>> hooks;
  std::string record_path;
  UniqueFd record_lock;         // the record's lock (marker_record.hpp), released after its removal
  std::string record_lock_for;  // the record path it locks
  ~ShelvedMarker() override {
    hooks.clear();
    remove_marker_record(record_path);
  }
};

class EbpfBackend final : public Backend {
 public:
  EbpfBackend(const EbpfConfig& cfg, Context& ctx)
      : ctx_(ctx),
        interfaces_(cfg.interfaces),
        max_flows_(cfg.max_flows),
        match_all_(cfg.match_all),
        match_all_label_(cfg.match_all_label),
        log_(get_logger("backend.ebpf")),
        update_errors_(prometheus::BuildCounter()
                           .Name("flowd_marker_map_update_errors_total")
                           .Help("Flow map updates or deletions the kernel refused")
                           .Register(ctx.metrics)
                           .Add({})),
        unlabelable_(prometheus::BuildCounter()
                         .Name("flowd_marker_unlabelable_flows_total")
                         .Help("Flow starts not marked: experiment > 511 or activity > 63 do not "
                               "fit the flow label")
                         .Register(ctx.metrics)
                         .Add({})),
        ignored_(ignored_counters(ctx)),
        dropped_(ctx.metrics, "flowd_marker_flows_dropped_total",
                 "Marked flows the marker dropped from its map other than at their end, by reason "
                 "(resize: a reload made the map smaller than the flows it held)"),
        interface_changes_(interface_change_counters(ctx)),
        pin_path_(cfg.pin_path) {}

  ~EbpfBackend() override { release(); }

  void start() override {
    if (auto missing = missing_capabilities(); !missing.empty())
      throw std::runtime_error(
          "the ebpf backend needs CAP_BPF and CAP_NET_ADMIN; this process lacks " + missing +
          " (run flowd as root or grant them; under systemd, run this configuration with "
          "flowd-marker@NAME.service or "
          "flowd.service: flowd@.service drops them)");
    // Subscribed before the interfaces are listed: what changes from now on is seen in run().
    watch_ = std::make_unique<LinkWatch>();
    std::vector<std::string> names;
    if (interfaces_.empty()) {
      // At boot the addresses may come after flowd (DHCPv6, SLAAC, a late NetworkManager): the
      // link watch attaches to each interface as it gains one.
      names = interfaces_with_global_ipv6();
      if (names.empty())
        log_->warn(
            "no interface has a global IPv6 address yet: marking starts on each one as it gains "
            "one (set [backend.ebpf] interfaces to name them)");
    } else {
      // A name must exist at start (a typo is an error); a pattern may match nothing yet.
      for (const auto& n : interfaces_)
        if (!is_interface_pattern(n)) names.push_back(n);
      for (const auto& [n, index] : interfaces_to_mark(interfaces_))
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
      if (names.empty())
        log_->info("no interface matches {} yet: marking starts when one appears",
                   fmt::join(interfaces_, ", "));
    }
    std::unique_ptr<ShelvedMarker> shelved;
    if (ctx_.shelf)
      if (auto item = ctx_.shelf->take(kShelfKey))
        if (auto* parked = dynamic_cast<ShelvedMarker*>(item.get())) {
          static_cast<void>(item.release());
          shelved.reset(parked);
        }
    try {
      start_on(names, shelved);
    } catch (...) {
      // The predecessor's record lock goes back with the rest of what it left.
      if (shelved && record_lock_ && shelved->record_lock_for == record_path_candidate_ &&
          !shelved->record_lock)
        shelved->record_lock = std::move(record_lock_);
      release();
      // What the predecessor left goes back, for the configuration a failed reload returns to.
      if (shelved && ctx_.shelf) ctx_.shelf->put(kShelfKey, std::move(shelved));
      throw;
    }
    {
      std::lock_guard lock(running_mu);
      running_names = interfaces_;
      running_owner = this;
    }
  }

  void handle(const FlowID& flow) override {
    // Only this host's own connections are marked. A remote firefly or a router's export is a claim
    // about a 5-tuple: acting on it would let anybody who can send a UDP datagram mark this host's
    // traffic (a forged start) or unmark it (a forged end of a flow np_api marked).
    if (!marks(flow.origin)) {
      if (auto o = static_cast<std::size_t>(flow.origin); o < kFlowOrigins && ignored_[o])
        ignored_[o]->Increment();
      return;
    }
    if (flow.state == FlowState::kOngoing) return;
    // With match_all the program marks every packet with one label and reads no map, but the map
    // still follows the flows: a reload that turns match_all off keeps it (same shape) and marks
    // exactly the flows live then. Before, it was left as match_all found it: the ends in between
    // were lost, and their entries came back as marks (a user's try, issue 15).
    if (!carries_flow_label(flow)) {
      log_->debug(
          "not marking {} flow {} -> {}: the flow label is IPv6 only (an IPv4-mapped end is IPv4)",
          to_string(flow.protocol), flow.src.to_string(), flow.dst.to_string());
      return;
    }
    flowd_flow_key key = map_key_of(FlowKey::of(flow));
    kept_->forget(key);  // a plugin reports it: its flow now, or ended
    if (flow.state == FlowState::kStart) {
      // Fireflies from other sites may carry ids wider than the label's 9 + 6 bits; masking them
      // would mark the flow with somebody else's experiment.
      if (flow.experiment > 511 || flow.activity > 63) {
        if (match_all_) return;  // marked with match_all's label all the same
        unlabelable_.Increment();
        limited_warn(*log_, limiter_,
                     "not marking [{}]:{} -> [{}]:{}: experiment {} / activity {} do not fit the "
                     "flow label (0..511 / 0..63)",
                     flow.src.to_string(), flow.src_port, flow.dst.to_string(), flow.dst_port,
                     flow.experiment, flow.activity);
        return;
      }
      std::uint32_t label = make_label(flow.experiment, flow.activity, random_label_entropy());
      std::uint32_t existing = 0;
      // A repeated start of the same flow keeps its entropy bits: one flow, one label.
      if (bpf_map_lookup_elem(map_fd_, &key, &existing) == 0 &&
          (existing & kLabelSemanticMask) == (label & kLabelSemanticMask))
        return;
      if (bpf_map_update_elem(map_fd_, &key, &label, BPF_ANY) != 0) {
        refused("update", errno, flow);
        return;
      }
      log_->debug("marking {} [{}]:{} -> [{}]:{} with 0x{:05x}", to_string(flow.protocol),
                  flow.src.to_string(), flow.src_port, flow.dst.to_string(), flow.dst_port, label);
    } else if (flow.state == FlowState::kEnd) {
      if (bpf_map_delete_elem(map_fd_, &key) != 0 && errno != ENOENT)
        refused("delete", errno, flow);
    }
  }

  // The flow events go to handle() on a thread of the backend's own; this one follows the
  // interfaces: it waits on the link notifications, the stop and that thread's end together.
  void run(std::stop_token stop, EventQueue& in) override {
    UniqueFd done(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!done) throw std::system_error(errno, std::generic_category(), "eventfd");
    std::exception_ptr failed;
    std::jthread events([&, hb = ctx_.heartbeats ? ctx_.heartbeats->add("backend.ebpf events")
                                                 : nullptr](std::stop_token own) {
      bind_thread_heartbeat(hb.get());
      try {
        Backend::run(own, in);
      } catch (...) {
        failed = std::current_exception();
      }
      bind_thread_heartbeat(nullptr);
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(done.get(), &one, sizeof one);
    });
    StopFd stopfd(stop);
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    // Armed while flows kept from a killed flowd's pinned map are listed (check_kept_flows).
    UniqueFd kept_timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!kept_timer) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    if (!kept_->empty()) {
      itimerspec every{};
      every.it_interval.tv_sec = kKeptCheckInterval.count();
      every.it_value = every.it_interval;
      ::timerfd_settime(kept_timer.get(), 0, &every, nullptr);
    }
    // Armed while the marker record could not be written.
    UniqueFd record_timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!record_timer) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    bool record_timer_armed = false;
    const auto arm_record_timer = [&] {
      if (record_unwritten_ == record_timer_armed) return;
      itimerspec every{};
      if (record_unwritten_) {
        every.it_interval.tv_sec = kRecordRetryInterval.count();
        every.it_value = every.it_interval;
      }
      ::timerfd_settime(record_timer.get(), 0, &every, nullptr);
      record_timer_armed = record_unwritten_;
    };
    for (int fd : {stopfd.fd(), done.get(), watch_->fd(), kept_timer.get(), record_timer.get()}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
        throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
    follow_interfaces();  // what changed between start() and now
    arm_record_timer();
    for (;;) {
      epoll_event ev{};
      int n;
      {
        WaitingScope waiting;
        n = ::epoll_wait(ep.get(), &ev, 1, -1);
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      if (n == 0) continue;
      if (ev.data.fd == kept_timer.get()) {
        std::uint64_t ticks;
        [[maybe_unused]] auto r = ::read(kept_timer.get(), &ticks, sizeof ticks);
        check_kept_flows();
        if (kept_->empty()) {
          const itimerspec off{};
          ::timerfd_settime(kept_timer.get(), 0, &off, nullptr);
        }
        continue;
      }
      if (ev.data.fd == record_timer.get()) {
        std::uint64_t ticks;
        [[maybe_unused]] auto r = ::read(record_timer.get(), &ticks, sizeof ticks);
        write_record();
        arm_record_timer();
        continue;
      }
      if (ev.data.fd != watch_->fd()) break;  // stopped, or the queue is closed and drained
      if (watch_->drain()) follow_interfaces();
      arm_record_timer();
    }
    events.request_stop();
    events.join();
    if (failed) std::rethrow_exception(failed);
  }

  void stop() override {
    // A reload's stop: the filters stay attached with this program (and its map) until the
    // successor replaces the program in place; what nobody takes is cleaned up by the shelf. The
    // daemon's own stop (or a unit test, without a shelf) cleans up now.
    if (ctx_.shelf && !ctx_.stopping.stop_requested() && map_fd_ >= 0) {
      auto item = std::make_unique<ShelvedMarker>();
      item->map = UniqueFd(::fcntl(map_fd_, F_DUPFD_CLOEXEC, 0));
      item->kept = kept_;
      item->locks = std::move(locks_);
      item->hooks = std::move(attachments_);
      item->record_path = std::exchange(record_path_, std::string());
      item->record_lock = std::move(record_lock_);
      item->record_lock_for = record_path_candidate_;
      locks_.clear();
      attachments_.clear();
      ctx_.shelf->put(kShelfKey, std::move(item));
    }
    release();
  }

 private:
  static constexpr const char* kShelfKey = "ebpf:marker";
  // How often the flows kept from a killed flowd's pinned map are checked for a closed connection.
  static constexpr std::chrono::seconds kKeptCheckInterval{5};
  static constexpr std::chrono::seconds kRecordRetryInterval{2};

  // The lock for `what` ("if:NAME", "pin:PATH"): reused from the predecessor, or taken; a live
  // flowd holding it is a start failure naming it.
  void lock(const std::string& what, ShelvedMarker* shelved, const std::string& refusal) {
    if (shelved)
      for (auto it = shelved->locks.begin(); it != shelved->locks.end(); ++it)
        if (it->what() == what) {
          locks_.push_back(std::move(*it));
          shelved->locks.erase(it);
          return;
        }
    pid_t holder = 0;
    std::string error;
    MarkerLock l = MarkerLock::acquire(what, holder, error);
    if (!l.held())
      throw std::runtime_error(fmt::format(
          "[backend.ebpf] another flowd ({}) {} (its marker lock, the abstract socket @{}, is {}); "
          "stop it first, or give this one other settings",
          holder > 0 ? "pid " + std::to_string(holder) : std::string("pid unknown"), refusal,
          MarkerLock::socket_name(what), error));
    locks_.push_back(std::move(l));
  }

  // The marker record's lock (marker_record.hpp): the predecessor's (a reload) or taken. Held by
  // another flowd with the same work_dir in this network namespace: false, and this one marks
  // without a record (the other one's is left alone), as a second flowd runs without the flow
  // journal.
  bool lock_record(ShelvedMarker* shelved) {
    if (shelved && shelved->record_lock && shelved->record_lock_for == record_path_candidate_) {
      record_lock_ = std::move(shelved->record_lock);
      return true;
    }
    bool busy = false;
    std::string error;
    record_lock_ = lock_marker_record(record_path_candidate_, busy, error);
    if (record_lock_) return true;
    if (shelved && shelved->record_lock) {
      // A reload to a work_dir that cannot be used (or another flowd's): the record stays where the
      // predecessor kept it (and locked), so that a restart after a kill still knows which clsact
      // is flowd's (try15k D2: it was removed, and flowd's own clsact stayed on the interface for
      // good).
      log_->warn(
          "the marker record cannot move to work_dir {} ({}): it stays in {} until a reload to a "
          "usable work_dir or the stop",
          ctx_.work_dir, busy ? "another flowd in this network namespace uses it" : error,
          shelved->record_lock_for);
      record_path_candidate_ = shelved->record_lock_for;
      record_lock_ = std::move(shelved->record_lock);
      return true;
    }
    if (!busy) {
      log_->warn(
          "no marker record: {}; a restart after this flowd is killed (kill -9, a crash) cannot "
          "remove the filters it leaves on interfaces no longer configured, nor tell which clsact "
          "it created (they are kept)",
          error);
      return false;
    }
    std::string owner;
    std::string read_error;
    if (auto rec = read_marker_record(record_path_candidate_, read_error); rec && rec->pid > 0)
      owner = fmt::format(" (pid {}, as its record says)", rec->pid);
    log_->warn(
        "no marker record: another flowd{} in this network namespace uses work_dir {} ({}); this "
        "one marks without a record and leaves that flowd's alone, so a restart after this one is "
        "killed (kill -9, a crash) cannot remove the filters it leaves on interfaces no longer "
        "configured, nor tell which clsact it created (they are kept); give each flowd its own "
        "work_dir to have both",
        owner, ctx_.work_dir, error);
    return false;
  }

  // The filters a killed flowd left on interfaces this configuration does not mark: removed, with
  // the clsact if that flowd created it and nothing else uses it. Interfaces are compared and found
  // by the index the record holds, so a link renamed since (ip link set X name Y) is the same
  // interface. Returns, per configured interface, whether the record says the clsact there was
  // flowd's. What could not be removed stays in the record (leftovers_).
  std::map<std::string, bool> clean_up_after_killed(const std::vector<std::string>& names,
                                                    const ShelvedMarker* shelved) {
    std::map<std::string, bool> created;
    if (record_path_candidate_.empty()) {
      if (ctx_.work_dir.empty())
        log_->info(
            "work_dir is empty: no marker record is kept, so a restart after kill -9 cannot tell "
            "which clsact flowd created (it keeps them) or clean interfaces no longer configured");
      return created;
    }
    // A flowd killed while it wrote the record left its temporary file (try15g 8): this marker
    // holds the record's lock, so no other writer's is there.
    if (std::size_t n = remove_stale_temporaries(record_path_candidate_))
      log_->info("removed {} temporary file(s) of the marker record a killed flowd left", n);
    std::string error;
    auto rec = read_marker_record(record_path_candidate_, error);
    if (!error.empty())
      log_->warn("ignoring the marker record {}: {}", record_path_candidate_, error);
    if (!rec) return created;
    for (const auto& h : rec->hooks) {
      auto configured = std::find_if(names.begin(), names.end(), [&](const std::string& n) {
        return h.ifindex > 0 ? static_cast<int>(::if_nametoindex(n.c_str())) == h.ifindex
                             : n == h.interface;
      });
      if (configured != names.end()) {
        created[*configured] = h.created_clsact;
        continue;
      }
      if (shelved && std::any_of(shelved->hooks.begin(), shelved->hooks.end(),
                                 [&](const auto& a) { return a->ifindex() == h.ifindex; }))
        continue;  // the predecessor's in this process: it goes when the shelf item does
      if (auto stays = remove_left_hook(h, rec->pid, *log_)) leftovers_.push_back(*stays);
    }
    return created;
  }

  void start_on(const std::vector<std::string>& names, std::unique_ptr<ShelvedMarker>& shelved) {
    // Every name resolved before anything is touched: an interface gone since the configuration
    // was checked must not cost the predecessor's filters, which are replaced in place below.
    require_named_interfaces(names);
    // A live flowd marking the same interface, or using the same pinned map, is refused before
    // anything is touched: taking over its hook or map would stop its marking, silently.
    for (const auto& n : names) lock(interface_lock_key(n), shelved.get(), "is marking " + n);
    if (!pin_path_.empty())
      lock(pin_lock_key(pin_path_), shelved.get(), "uses the flow map pinned at " + pin_path_);
    const MapShape want{BPF_MAP_TYPE_LRU_HASH, sizeof(flowd_flow_key), sizeof(__u32), max_flows_};
    if (!pin_path_.empty())
      if (auto what = foreign_pin(pin_path_, want, "flowd_flow_labels"); !what.empty())
        throw std::runtime_error(
            "[backend.ebpf] pin_path: " + pin_path_ + " holds " + what +
            ", not flowd's flow map (flowd_flow_labels: LRU hash, key " +
            std::to_string(want.key_size) + " bytes, value " + std::to_string(want.value_size) +
            " bytes); flowd would replace it: remove it (rm " + pin_path_ +
            ") if nothing uses it, or set [backend.ebpf] pin_path to another path");
    // libbpf's messages go to flowd's log from the first call on (the clean-up below asks the
    // kernel about hooks): its own printer would write raw "libbpf: ..." lines to stderr.
    libbpf_set_print(on_libbpf_print);
    record_path_candidate_ = marker_record_path(ctx_.work_dir);
    if (!record_path_candidate_.empty() && !lock_record(shelved.get()))
      record_path_candidate_.clear();
    auto recorded_created = clean_up_after_killed(names, shelved.get());
    {
      std::lock_guard lock(libbpf_mu);
      libbpf_tail.clear();
    }
    skel_ = flowd_marker__open();
    if (!skel_)
      throw std::runtime_error(std::string("cannot open the BPF marker: ") + std::strerror(errno));
    bpf_map__set_max_entries(skel_->maps.flowd_flow_labels, max_flows_);
    skel_->rodata->cfg_match_all = match_all_ ? 1 : 0;
    skel_->rodata->cfg_match_all_label = match_all_label_;
    // The flows marked before: the map of the instance a reload stopped, or the pinned one a
    // previous flowd left. The same map is used again when it has the same shape; otherwise
    // (max_flows changed) its entries are copied into the new one after load.
    // The predecessor's stays on its shelf item (a copy of the descriptor is taken), so a failed
    // start hands it back whole.
    UniqueFd previous = shelved && shelved->map
                            ? UniqueFd(::fcntl(shelved->map.get(), F_DUPFD_CLOEXEC, 0))
                        : pin_path_.empty() ? UniqueFd()
                                            : open_pinned_map(pin_path_);
    const bool reuse = previous && map_shape(previous.get()) == want &&
                       bpf_map__reuse_fd(skel_->maps.flowd_flow_labels, previous.get()) == 0;
    if (int rc = flowd_marker__load(skel_); rc != 0) {
      std::string tail;
      {
        std::lock_guard lock(libbpf_mu);
        tail = libbpf_tail;
      }
      throw std::runtime_error(std::string("the kernel refused the BPF marker (") +
                               std::strerror(-rc) + "):\n" + tail);
    }
    map_fd_ = bpf_map__fd(skel_->maps.flowd_flow_labels);
    // A reload's predecessor's map followed every start this marker would have heard: kept or
    // copied, its flows are here (the kernel plugin writes in the live flows of any other).
    carried_from_ = shelved && shelved->map ? map_id(shelved->map.get()) : 0;
    if (reuse) {
      log_->info("kept the flow map of the previous marker: {}",
                 counted(count_entries(map_fd_), "flow stays marked", "flows stay marked"));
    } else if (previous) {
      carry_over(previous.get(), want);
    }
    // A pinned map comes from a flowd that is no longer running (a live one holds the pin's lock):
    // killed, its connections may have ended unseen. A reload's map is this process's, and current.
    // Under match_all too: the map follows the flows then, and marks again once it is turned off.
    if (previous && !(shelved && shelved->map)) drop_stale_flows();
    if (shelved && shelved->kept) kept_ = shelved->kept;  // a reload: still listed
    previous.reset();
    if (!pin_path_.empty()) {
      if (auto err = pin_map(map_fd_, pin_path_); !err.empty())
        log_->warn(
            "cannot pin the flow map at {}: {}; marked flows are kept across reloads, not restarts",
            pin_path_, err);
    }
    const int prog_fd = bpf_program__fd(skel_->progs.flowd_mark);
    {
      // The record first, then the clsact qdiscs (try15h D6): killed in between, this flowd left
      // a clsact no record named, kept for ever. What the predecessor still has attached stays in
      // it until the record below says what is attached now.
      std::vector<RecordedHook> intent;
      if (shelved)
        for (const auto& h : shelved->hooks)
          intent.push_back({h->interface(), h->ifindex(), h->created_qdisc()});
      for (const auto& n : names)
        if (std::none_of(intent.begin(), intent.end(),
                         [&](const RecordedHook& h) { return h.interface == n; })) {
          auto r = recorded_created.find(n);
          intent.push_back(about_to_attach(n, r != recorded_created.end() && r->second));
        }
      write_record(intent);
    }
    for (const auto& n : names) {
      std::unique_ptr<TcAttachment> kept;
      if (shelved)
        for (auto it = shelved->hooks.begin(); it != shelved->hooks.end(); ++it)
          if ((*it)->interface() == n &&
              (*it)->ifindex() == static_cast<int>(if_nametoindex(n.c_str()))) {
            kept = std::move(*it);
            shelved->hooks.erase(it);
            break;
          }
      if (kept) {
        kept->replace(prog_fd);  // the predecessor's filter, in place: no unmarked gap
        attachments_.push_back(std::move(kept));
      } else {
        auto r = recorded_created.find(n);
        attachments_.push_back(std::make_unique<TcAttachment>(
            n, prog_fd,
            r == recorded_created.end() ? std::nullopt : std::optional<bool>(r->second)));
      }
    }
    write_record();
    if (shelved) {
      // What the predecessor marked and this configuration does not: detached now. Its record goes
      // with it (then its lock), unless it is the one just written: a reload that changed work_dir
      // left it in the old directory, where a later start with that work_dir took it for a killed
      // flowd's and removed the clsact an admin had made since (try15i D).
      if (shelved->record_path == record_path_candidate_) shelved->record_path.clear();
      shelved.reset();
    }
    stats_ = std::make_unique<MarkerStats>(bpf_map__fd(skel_->maps.flowd_stats), map_fd_);
    ctx_.hub.add(stats_.get());
    if (ctx_.status) {
      probe_ =
          std::make_shared<Probe>(map_fd_, status_interfaces(), match_all_, kept_, carried_from_);
      ctx_.status->set_marker(probe_);
    }
    log_->info("marking {} on {} (map of {})",
               match_all_
                   ? fmt::format("every IPv6 TCP/UDP packet with label 0x{:05x}", match_all_label_)
                   : std::string("IPv6 TCP/UDP flows from start to end"),
               where(names), counted(max_flows_, "flow", "flows"));
  }

  // The start-up message's "on ...": the interfaces marked now, or what marking waits for.
  std::string where(const std::vector<std::string>& names) const {
    if (!names.empty()) return fmt::format("{}", fmt::join(names, ", "));
    if (interfaces_.empty()) return "no interface yet (each one as it gains a global IPv6 address)";
    return fmt::format("no interface yet (each one matching {} as it appears)",
                       fmt::join(interfaces_, ", "));
  }

  // Attaches to the interfaces the configuration selects now and are not attached, detaches from
  // those it no longer selects (gone, renamed, re-created with another index, or without a global
  // IPv6 address any more), and rewrites the record so that nothing gone stays in it.
  void follow_interfaces() {
    if (!skel_) return;
    const auto want = interfaces_to_mark(interfaces_);
    bool changed = false;
    for (auto it = attachments_.begin(); it != attachments_.end();) {
      const MarkedInterface have{(*it)->interface(), (*it)->ifindex()};
      if (std::find(want.begin(), want.end(), have) != want.end()) {
        ++it;
        continue;
      }
      (*it)->set_detach_reason(why_not_marked(have, want));
      it = attachments_.erase(it);  // detaches (nothing to do when the interface is gone)
      unlock("if:#" + std::to_string(have.second));
      interface_changes_[static_cast<std::size_t>(InterfaceChange::kDetached)]->Increment();
      changed = true;
    }
    const int prog_fd = bpf_program__fd(skel_->progs.flowd_mark);
    // Kept interfaces whose filter somebody removed (tc qdisc del dev X clsact, tc filter del):
    // attached again, with a warning (replace() says what it found).
    for (auto& a : attachments_) {
      if (a->present()) continue;
      try {
        a->replace(prog_fd);
        changed = true;  // the clsact may be flowd's now: the record says so
      } catch (const std::exception& e) {
        interface_changes_[static_cast<std::size_t>(InterfaceChange::kFailed)]->Increment();
        limited_warn(*log_, interface_limiter_,
                     "the marker's filter on {} was removed, and cannot be attached again: {}",
                     a->interface(), e.what());
      }
    }
    for (const auto& w : want) {
      if (std::any_of(attachments_.begin(), attachments_.end(), [&](const auto& a) {
            return a->interface() == w.first && a->ifindex() == w.second;
          }))
        continue;
      const std::string key = "if:#" + std::to_string(w.second);
      try {
        pid_t holder = 0;
        std::string error;
        MarkerLock l = MarkerLock::acquire(key, holder, error);
        if (!l.held())
          throw std::runtime_error(
              fmt::format("another flowd (pid {}) is marking it ({})", holder, error));
        write_record({about_to_attach(w.first, false)});  // before the clsact, as at start
        // The attach failed after this: the record (rewritten below) names it no more.
        changed = true;
        attachments_.push_back(std::make_unique<TcAttachment>(w.first, prog_fd));
        locks_.push_back(std::move(l));
        interface_changes_[static_cast<std::size_t>(InterfaceChange::kAttached)]->Increment();
      } catch (const std::exception& e) {
        interface_changes_[static_cast<std::size_t>(InterfaceChange::kFailed)]->Increment();
        limited_warn(*log_, interface_limiter_, "cannot mark {}, which appeared after start: {}",
                     w.first, e.what());
      }
    }
    if (!changed) return;
    write_record();
    if (probe_) probe_->set_interfaces(status_interfaces());
  }

  // Why an attached interface is no longer among those to mark, for the detach line: renamed out
  // of `interfaces`, or (without `interfaces`) without a global IPv6 address now; empty when it is
  // gone (the detach says so).
  std::string why_not_marked(const MarkedInterface& have,
                             const std::vector<MarkedInterface>& want) const {
    char name[IF_NAMESIZE] = {};
    if (have.second <= 0 || !::if_indextoname(static_cast<unsigned>(have.second), name)) return "";
    if (have.first != name) {
      if (std::find(want.begin(), want.end(), MarkedInterface{name, have.second}) != want.end())
        return fmt::format("renamed to {}: marked under its new name", name);
      return fmt::format("renamed to {}, which {}", name,
                         interfaces_.empty() ? "has no global IPv6 address"
                                             : "[backend.ebpf] interfaces does not select");
    }
    return interfaces_.empty() ? "it has no global IPv6 address any more"
                               : "[backend.ebpf] interfaces no longer selects it";
  }

  void unlock(const std::string& what) {
    auto it = std::find_if(locks_.begin(), locks_.end(),
                           [&](const MarkerLock& l) { return l.what() == what; });
    if (it != locks_.end()) locks_.erase(it);
  }

  // The status's list: every attached interface, and each configured name not attached (gone).
  std::vector<MarkerInterface> status_interfaces() const {
    std::vector<MarkerInterface> ifs;
    for (const auto& a : attachments_) ifs.push_back({a->interface(), true});
    for (const auto& n : interfaces_)
      if (!is_interface_pattern(n) &&
          std::none_of(ifs.begin(), ifs.end(), [&](const auto& i) { return i.name == n; }))
        ifs.push_back({n, false});
    return ifs;
  }

  // The pinned map's TCP entries without a connection in this network namespace go (see
  // stale_flows.hpp); the log says how many were kept and dropped.
  void drop_stale_flows() {
    // The flows the daemon follows now: those the flow journal restored before the backends
    // started (the status board lists them), by map key, for their addresses (the key has only
    // the destination's).
    std::map<std::string, FlowKey> followed;
    if (ctx_.status)
      for (const auto& f : ctx_.status->active_flows(std::numeric_limits<std::size_t>::max()))
        if (f.origin == FlowOrigin::kLocal && f.key.protocol == Protocol::kTcp)
          followed.emplace(key_bytes(map_key_of(f.key)), f.key);
    StaleFlows r = drop_tcp_flows_without_socket(map_fd_, followed);
    if (!r.error.empty()) {
      log_->warn(
          "cannot list this network namespace's TCP sockets ({}): the flows kept from the previous "
          "marker are not checked against live connections",
          r.error);
      return;
    }
    log_->info(
        "checked the flows kept from the previous marker against this network namespace's "
        "sockets: kept {} with a live connection{}, dropped {} without one; kept {} (no "
        "connection state to check: they go with their end or the map's LRU)",
        counted(r.tcp_kept, "TCP flow", "TCP flows"),
        r.tcp_elsewhere
            ? fmt::format(" and {} neither of whose addresses is this network namespace's (a "
                          "tool's report, followed on as the flow journal restored it: its "
                          "socket cannot be listed here)",
                          r.tcp_elsewhere)
            : std::string(),
        r.tcp_dropped, counted(r.udp_kept, "UDP flow", "UDP flows"));
    if (r.kept.empty()) return;
    kept_->set(std::move(r.kept), Clock::now());
    log_->info(
        "flowd flows lists the {} as the plugin ebpf until a plugin reports them, their end "
        "comes or (TCP) their connection closes (checked every {} s: the entry goes)",
        counted(kept_->size(), "kept flow", "kept flows"), kKeptCheckInterval.count());
  }

  // The kept flows (kept_flows.hpp) whose connection closed, or that the map no longer holds.
  void check_kept_flows() {
    if (map_fd_ < 0) return;
    const auto r = kept_->check(map_fd_);
    if (!r.error.empty())
      limited_warn(*log_, interface_limiter_,
                   "cannot list this network namespace's TCP sockets ({}): the flows kept from the "
                   "previous marker are checked again in {} s",
                   r.error, kKeptCheckInterval.count());
    if (r.ended || r.evicted)
      log_->info(
          "of the flows kept from the previous marker, {} ended (their connection closed: "
          "unmarked) and {} left the map otherwise (an end, the map's LRU); {} still listed",
          r.ended, r.evicted, kept_->size());
  }

  // Copies the previous map's flows into the new one of another size: at most its capacity;
  // what does not fit is logged and counted as dropped. Flows that end during the copy (the kernel
  // plugin's program deletes their entries from the previous map) are not dropped: they are gone.
  void carry_over(int previous_fd, const MapShape& want) {
    auto shape = map_shape(previous_fd);
    if (shape.key_size != want.key_size || shape.value_size != want.value_size) return;
    const std::uint64_t had = count_entries(previous_fd);
    const CopyResult r =
        copy_entries(previous_fd, map_fd_, want.key_size, want.value_size, max_flows_);
    // Counted, not taken from the updates: the LRU map may still have evicted some it took.
    const std::uint64_t present = count_entries(map_fd_);
    const std::uint64_t evicted = r.copied > present ? r.copied - present : 0;
    const std::uint64_t dropped = r.not_copied + evicted;
    const std::uint64_t walked = r.copied + r.not_copied;
    const std::string ended =
        had > walked ? fmt::format(" ({} ended during the copy)", had - walked) : std::string();
    dropped_.add(DropReason::kResize, static_cast<double>(dropped));
    if (dropped == 0)
      log_->info("copied {} from the previous marker's map of {} into the new one of {}{}",
                 counted(present, "flow", "flows"), shape.max_entries, max_flows_, ended);
    else
      log_->warn(
          "copied {} from the previous marker's map of {} into the new one of {}{}; dropped {} "
          "of the {} it held{} (in the map's key order: the map keeps no time of use), counted in "
          "flowd_marker_flows_dropped_total{{reason=\"resize\"}}",
          counted(present, "flow", "flows"), shape.max_entries, max_flows_, ended, dropped, walked,
          r.refusal ? fmt::format("; the new map refused one: {}", std::strerror(r.refusal))
                    : std::string());
  }

  // The record of what this instance attached (marker_record.hpp), for a restart after kill -9.
  // `pending`: the hooks about to be attached (about_to_attach), recorded before their clsact is
  // made.
  void write_record(const std::vector<RecordedHook>& pending = {}) {
    if (record_path_candidate_.empty()) return;
    MarkerRecord rec{::getpid(), {}};
    for (const auto& a : attachments_)
      rec.hooks.push_back({a->interface(), a->ifindex(), a->created_qdisc()});
    rec.hooks.insert(rec.hooks.end(), leftovers_.begin(), leftovers_.end());
    rec.hooks.insert(rec.hooks.end(), pending.begin(), pending.end());
    if (auto err = write_marker_record(record_path_candidate_, rec); err.empty()) {
      record_path_ = record_path_candidate_;
      if (std::exchange(record_unwritten_, false))
        log_->info(
            "marker record {} written: a restart after kill -9 knows which clsact is "
            "flowd's again",
            record_path_candidate_);
    } else if (!std::exchange(record_unwritten_, true)) {
      log_->warn(
          "cannot write the marker record: {}; a restart after kill -9 will not know which "
          "clsact flowd created; tried again every {} s",
          err, kRecordRetryInterval.count());
    }
  }

  // The record's hook for interface `name` before the marker attaches to it: the clsact counts as
  // flowd's when there is none yet (the attach makes it) or `recorded_created` (a killed flowd's
  // record said it made the one there). A restart after a kill before the filter went on then
  // removes a clsact left without filters (remove_marker_hook), or takes it as its own.
  static RecordedHook about_to_attach(const std::string& name, bool recorded_created) {
    const int index = static_cast<int>(::if_nametoindex(name.c_str()));
    return {name, index, recorded_created || (index > 0 && has_clsact(index) == 0)};
  }

  void refused(const char* what, int err, const FlowID& flow) {
    update_errors_.Increment();
    limited_warn(*log_, limiter_, "flow map {} refused for [{}]:{}: {}", what, flow.dst.to_string(),
                 flow.dst_port, std::strerror(err));
  }

  void release() {
    {
      std::lock_guard lock(running_mu);
      if (running_owner == this) {
        running_names.clear();
        running_owner = nullptr;
      }
    }
    if (probe_ && ctx_.status) ctx_.status->clear_marker(probe_.get());
    probe_.reset();
    if (stats_) ctx_.hub.remove(stats_.get());
    stats_.reset();
    attachments_.clear();
    remove_marker_record(std::exchange(record_path_, std::string()));  // a clean stop
    record_lock_.reset();  // after the removal: a flowd waiting for it finds no record of ours
    locks_.clear();
    watch_.reset();
    if (skel_) flowd_marker__destroy(skel_);
    skel_ = nullptr;
    map_fd_ = -1;
  }

  Context& ctx_;
  std::vector<std::string> interfaces_;
  std::uint32_t max_flows_;
  bool match_all_;
  std::uint32_t match_all_label_ = 0;
  std::shared_ptr<spdlog::logger> log_;
  prometheus::Counter& update_errors_;
  prometheus::Counter& unlabelable_;
  std::array<prometheus::Counter*, kFlowOrigins> ignored_;  // by origin; null for local
  ReasonCounters<DropReason, kDropReasons> dropped_;
  std::array<prometheus::Counter*, 3> interface_changes_;  // by InterfaceChange
  std::string pin_path_;
  std::string record_path_candidate_;  // where the record goes (empty: work_dir empty)
  std::string record_path_;            // the record this instance wrote (removed at a clean stop)
  // The last write of the record failed (work_dir full): tried again every kRecordRetryInterval by
  // run()'s loop (before, never: a kill -9 then left flowd's clsact for good, try15l).
  bool record_unwritten_ = false;
  UniqueFd record_lock_;  // held while record_path_candidate_ is this instance's
  std::vector<MarkerLock> locks_;
  flowd_marker* skel_ = nullptr;
  int map_fd_ = -1;
  std::uint32_t carried_from_ = 0;  // Probe::carried_from
  std::vector<std::unique_ptr<TcAttachment>> attachments_;
  std::vector<RecordedHook> leftovers_;  // a killed flowd's filters that could not be removed
  std::unique_ptr<MarkerStats> stats_;
  std::shared_ptr<Probe> probe_;  // lent to the daemon's status while marking
  std::shared_ptr<KeptFlows> kept_ = std::make_shared<KeptFlows>();
  std::unique_ptr<LinkWatch> watch_;  // read by run()'s thread only
  LogLimiter interface_limiter_;      // run()'s thread; limiter_ is handle()'s
  LogLimiter limiter_;
};

std::unique_ptr<Backend> create(const Section& cfg, Context& ctx) {
  EbpfConfig c = EbpfConfig::from(cfg, *ctx.registry.get());
  // Checked when the component is built — by --check-config, at start and by a reload before
  // anything stops — so that a typo neither starts nor touches a marker that works. A reload
  // leaves the names of the running marker alone (they may be gone for now).
  require_named_interfaces(c.interfaces, true);
  return std::make_unique<EbpfBackend>(c, ctx);
}

}  // namespace

const BackendInfo& backend_info() {
  static const BackendInfo info{"ebpf",        "IPv6 flow-label marking with a tc BPF program",
                                config_keys(), create,
                                nullptr,       clean_up_unlisted};
  return info;
}

}  // namespace flowd::ebpf
