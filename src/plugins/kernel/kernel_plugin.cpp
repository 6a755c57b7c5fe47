// SPDX-License-Identifier: Apache-2.0
// The kernel plugin: the scanners' tagging (fixed tag, per-local-port rules, internal_networks,
// ignore_private, process ownership as the iperf plugin's) on connection events the kernel sends as
// they happen (conn_events.hpp), instead of a dump every `interval`. One sock_diag dump adopts what
// exists at start, and another repairs the tracker whenever the ring buffer was full (records
// lost).
#include "plugins/kernel/kernel_plugin.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/counted.hpp"
#include "common/unique_fd.hpp"
#include "flowd/daemon_status.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/reload_shelf.hpp"
#include "flowd/scitags_label.hpp"
#include "flowd/stop_fd.hpp"
#include "flowd_marker.h"
#include "netlink/sock_diag.hpp"
#include "plugins/kernel/boot_clock.hpp"
#include "plugins/kernel/closed_cookies.hpp"
#include "plugins/kernel/conn_events.hpp"
#include "plugins/kernel/ownership.hpp"
#include "plugins/kernel/ring_handover.hpp"
#include "plugins/scanner/connection_filter.hpp"
#include "plugins/scanner/scanner_keys.hpp"
#include "plugins/scanner/scanner_plugin.hpp"

namespace flowd::kernel {
namespace {

constexpr std::array<KeySpec, 2> kRingKeys = {{
    {.name = "resync_interval",
     .type = KeyType::kDuration,
     .default_value = "30",
     .help = "time between two sock_diag dumps that check the connections followed against the "
             "kernel's: what the kernel did not report (it does not always run the program for a "
             "state change, and does not always say so) is started or ended then, with the "
             "dump's time",
     .min = 1000,
     .max = 3600 * 1000,
     .unit = DurationUnit::kSeconds,
     .resolution = DurationUnit::kMilliseconds},
    {.name = "ring_buffer_size",
     .type = KeyType::kInt,
     .default_value = "1048576",
     .help = "bytes of the BPF ring buffer that carries connection events to flowd (a power of "
             "two, at least 4096; 88 bytes an event); when it is full, events are counted lost and "
             "a sock_diag dump repairs what they said",
     .min = 4096,
     .max = 1 << 30},
}};

constexpr auto kKeys = scanner::join(
    scanner::tag_keys({}, {}),
    scanner::owner_keys("",
                        "connections of processes with this name (comm, e.g. iperf3), as the "
                        "kernel saw them connect() or listen(), get a pair from flow_ids (a port "
                        "rule wins over it, it over the fixed tag); empty: off",
                        {}),
    scanner::scan_keys({}, {}), kRingKeys);

// Where BPF cannot be loaded: the netlink plugin's polling, under this plugin's name; with process
// ownership, /proc and the listeners are read again at each scan, as the iperf plugin does.
class PollingFallback final : public scanner::ScannerPlugin {
 public:
  PollingFallback(const char* name, Context& ctx, scanner::ScannerOptions options,
                  scanner::Tagger tagger, std::optional<ProcessOwners> owners)
      : ScannerPlugin(name, ctx, std::move(options), std::move(tagger)),
        owners_(std::move(owners)) {}
  void start() override { diag_.emplace(); }

 protected:
  bool scan(const scanner::ConnectionVisitor& visit, std::string& error) override {
    if (!owners_) return scanner::scan_sock_diag(*diag_, visit, error);
    if (!owners_->refresh(*diag_, error)) return false;
    return scanner::scan_sock_diag(
        *diag_, [&](const scanner::Connection& c) { visit(owners_->with_owner(c)); }, error);
  }

 private:
  std::optional<netlink::SockDiag> diag_;
  std::optional<ProcessOwners> owners_;
};

// The record's addresses as the scanners see them: IPv4-mapped IPv6 as IPv4 (sock_diag.cpp).
IpAddress address_of(const __u8 (&bytes)[16], int family) {
  IpAddress a;
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == AF_INET6 && std::memcmp(bytes, kMapped, sizeof kMapped) == 0) {
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), bytes + 12, 4);
  } else {
    a.family = family;
    std::memcpy(a.bytes.data(), bytes, family == AF_INET ? 4 : 16);
  }
  return a;
}

// What a kernel plugin stopped by a reload leaves its successor (flowd/reload_shelf.hpp): its
// program, still attached, whose ring buffer keeps the state changes of the gap between the two,
// and what it followed (neither when it polled: the item then only says that a reload restarted
// the plugin; the polling fallback hands its tracker on itself, scanner::ShelvedTracker).
// Destroyed untaken (the plugin left the configuration), the program goes.
struct ShelvedKernel final : ShelfItem {
  std::unique_ptr<ConnEvents> events;
  std::optional<scanner::ConnectionTracker> tracker;
  // The program's lost, missed and first-packet mark counts as far as its plugin counted them
  // (what came after, up to the successor's read, its successor counts, and repairs).
  std::uint64_t lost = 0, missed = 0, marked = 0;
  RingHandover handover;  // copies in its ring of what its own predecessor's ring handed
  // The kernel's id of the marker's map its program wrote (0: none): a successor's map that is not
  // this one, nor the marker's copy of it, lacks the flows it followed (mark_live_flows).
  std::uint32_t marked_map = 0;
};

// The kernel's description of a map (its id, to tell one map from another, and its size); zeros
// when it cannot be read.
bpf_map_info map_info(int fd) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) info = {};
  return info;
}

std::uint64_t boot_ns_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

class KernelPlugin final : public Plugin {
 public:
  KernelPlugin(const Section& cfg, Context& ctx, const char* name)
      : name_(name),
        ctx_(ctx),
        log_(get_logger(std::string("plugin.") + name)),
        options_(scanner::scanner_options(cfg, "plugin.kernel")),
        tagging_(std::make_shared<KernelTagger>(KernelTagger::from(cfg, *ctx.registry.get()))),
        tagger_([t = tagging_](const scanner::Connection& c, bool&) { return (*t)(c); }),
        ring_bytes_(static_cast<std::uint32_t>(cfg.get_int("ring_buffer_size"))),
        rules_(tagging_->rules()),
        tracker_(options_.filter, options_.report_existing, tagger_) {
    if (!tagging_->process().empty()) owners_.emplace("/proc", tagging_->process());
    // A reload asks the tags again (ConnectionTracker::retag); with ownership, an owned
    // connection keeps the pair drawn for it, unless a rule for its port now wins (try17a F2).
    options_.retag = true;
    if (owners_)
      options_.retag_with = [t = tagging_](const scanner::Connection& c,
                                           bool& keep) -> std::optional<scanner::Tag> {
        if (auto it = t->rules().by_port.find(c.local_port); it != t->rules().by_port.end())
          return it->second;
        if (t->owned(c)) {
          keep = true;
          return std::nullopt;
        }
        return t->rules().fallback;
      };
    tracker_.follow_until_close(true);  // as the program's events: live until CLOSE
    resync_interval_ = cfg.get_duration("resync_interval");
    if ((ring_bytes_ & (ring_bytes_ - 1)) != 0)
      throw ConfigError("[plugin.kernel] ring_buffer_size: " + std::to_string(ring_bytes_) +
                        " is not a power of two");
    auto& m = ctx.metrics;
    events_total_ = &prometheus::BuildCounter()
                         .Name("flowd_kernel_events_total")
                         .Help("TCP state changes the kernel plugin read from its ring buffer")
                         .Register(m)
                         .Add({});
    lost_total_ = &prometheus::BuildCounter()
                       .Name("flowd_kernel_events_lost_total")
                       .Help("TCP state changes the full ring buffer could not take")
                       .Register(m)
                       .Add({});
    missed_total_ = &prometheus::BuildCounter()
                         .Name("flowd_kernel_events_missed_total")
                         .Help(
                             "TCP state changes the kernel did not run the plugin's program for "
                             "(one on a CPU where it was running already: BPF does not nest it)")
                         .Register(m)
                         .Add({});
    resyncs_total_ = &prometheus::BuildCounter()
                          .Name("flowd_kernel_resyncs_total")
                          .Help("sock_diag dumps the kernel plugin made to repair lost events")
                          .Register(m)
                          .Add({});
    checks_total_ = &prometheus::BuildCounter()
                         .Name("flowd_kernel_periodic_resyncs_total")
                         .Help(
                             "sock_diag dumps the kernel plugin made every resync_interval to "
                             "check the connections it follows against the kernel's")
                         .Register(m)
                         .Add({});
    auto& unreported = prometheus::BuildCounter()
                           .Name("flowd_kernel_unreported_total")
                           .Help(
                               "Starts and ends a periodic resync made that the kernel did not "
                               "report, by state")
                           .Register(m);
    unreported_starts_ = &unreported.Add({{"state", "start"}});
    unreported_ends_ = &unreported.Add({{"state", "end"}});
    premarked_total_ =
        &prometheus::BuildCounter()
             .Name("flowd_kernel_first_packet_marks_total")
             .Help(
                 "Connections the kernel plugin's BPF program put in the marker's flow map at "
                 "their state change, before user space heard of them (marked from the first "
                 "packet)")
             .Register(m)
             .Add({});
    unmarked_total_ =
        &prometheus::BuildCounter()
             .Name("flowd_kernel_first_packet_unmarks_total")
             .Help(
                 "Of those, the connections user space took out of the marker's map again: "
                 "not reported (found excluded by a resync; the excluded networks are never "
                 "marked)")
             .Register(m)
             .Add({});
    owner_unknown_total_ =
        &prometheus::BuildCounter()
             .Name("flowd_kernel_owner_unknown_total")
             .Help(
                 "Connections the kernel plugin saw start, with process set, whose owner the "
                 "kernel had not recorded (connect() or listen() before the program was attached, "
                 "or the map of connect()s in flight full)")
             .Register(m)
             .Add({});
    tracked_ = &prometheus::BuildGauge()
                    .Name("flowd_kernel_tracked_connections")
                    .Help("Connections the kernel plugin follows (started, adopted or ignored)")
                    .Register(m)
                    .Add({});
  }

  void start() override {
    diag_.emplace();  // the adoption and resync dumps; a failure is reported before READY=1
    std::unique_ptr<ShelvedKernel> shelved;
    if (ctx_.shelf)
      if (auto item = ctx_.shelf->take(shelf_key()))
        if (auto* parked = dynamic_cast<ShelvedKernel*>(item.get())) {
          static_cast<void>(item.release());
          shelved.reset(parked);
        }
    restarted_ = shelved != nullptr;  // a reload's successor, whatever its predecessor could shelve
    auto marks = first_packet_marks(shelved && shelved->events ? shelved->events.get() : nullptr);
    // A reload's successor with a marker's map its predecessor's program did not write (a marker
    // added by the same reload, or by an earlier one the predecessor had not noticed yet): what
    // they followed is written in once run() has it all.
    // At flowd's start, what the previous flowd left live and run() follows on (the flow journal)
    // is written in too: a map not pinned is a new one.
    mark_followed_ =
        marks &&
        (!restarted_ || !holds_flows_of(shelved && shelved->events ? shelved->marked_map : 0));
    try {
      // Both programs are attached from here on: the predecessor's ring holds everything up to
      // its detach (read first, whole, in run()), this one's everything from its attach; the
      // overlap is handed once (ring_handover.hpp).
      if (shelved && shelved->events) handover_ = std::move(shelved->handover);
      const std::uint64_t attach = boot_ns_now();
      bpf_ = std::make_unique<ConnEvents>(ring_bytes_, netns_, own_ring_handler(), marks,
                                          owners_.has_value());
      handover_.begin(attach);  // before bpf_ is read
      if (shelved && shelved->events && shelved->tracker) {
        predecessor_ = std::move(shelved->events);
        if (owners_) bpf_->copy_owners_from(*predecessor_);
        predecessor_lost_ = shelved->lost;
        predecessor_missed_ = shelved->missed;
        predecessor_marked_ = shelved->marked;
        // Its marks from its plugin's last read to its detach (the restart's ~100 ms: try16b F2)
        // went into the map the marker reads now: counted at the read of its ring.
        predecessor_marks_count_ = marks && holds_flows_of(shelved->marked_map);
        predecessor_->set_handler(old_ring_handler());
        tracker_.take_over(std::move(*shelved->tracker));
      } else {
        handover_.old_done(0);  // no predecessor: nothing to skip
      }
      if (marks)
        log_->info(
            "marking from the first packet: the BPF program writes the marker's map at each "
            "IPv6 connection's start ({})",
            rules_text(*marks));
      if (ctx_.status)
        ctx_.status->set_mode(name_, "following TCP state changes in the kernel (BPF, " +
                                         std::to_string(ring_bytes_) + "-byte ring buffer)");
    } catch (const LoadError& e) {
      // A reload's successor of a plugin that polled already: the same reason, said once as a
      // warning at its start, is an info line now (a run of reloads repeated the warning).
      const bool polled_before = shelved && !shelved->events;
      log_->log(polled_before ? spdlog::level::info : spdlog::level::warn,
                "cannot follow TCP state changes in the kernel ({}); polling sock_diag every {} ms "
                "instead, as the netlink plugin{}",
                e.what(), options_.interval.count(),
                polled_before ? " (as before the reload)" : "");
      if (ctx_.status)
        ctx_.status->set_mode(name_, fmt::format("polling sock_diag every {} ms: cannot "
                                                 "follow TCP state changes in the kernel "
                                                 "({})",
                                                 options_.interval.count(), e.what()));
      fallback_ = std::make_unique<PollingFallback>(name_, ctx_, options_, tagger_, owners_);
      fallback_->start();
    }
  }

  void run(std::stop_token stop, Publisher& out) override {
    if (fallback_) return fallback_->run(stop, out);
    StopFd stopfd(stop);
    UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
    if (!ep) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    epoll_fd_ = ep.get();
    // A state change the kernel skipped (ConnEvents::missed) puts nothing in the ring to wake this
    // thread: the count is looked at every second too, so that its repair does not wait for the
    // next connection event. The ring is read then as well: a wakeup lost some other way than the
    // one ConnEvents::consume() closes delays a record by a second at most, instead of until the
    // next connection event (and the debug log says so).
    UniqueFd read_timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!read_timer) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    itimerspec every{};
    every.it_interval.tv_sec = 1;
    every.it_value = every.it_interval;
    ::timerfd_settime(read_timer.get(), 0, &every, nullptr);
    resync_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!resync_timer_) throw std::system_error(errno, std::generic_category(), "timerfd_create");
    for (int fd : {stopfd.fd(), bpf_->fd(), read_timer.get(), resync_timer_.get()}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
        throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
    // The program is attached since start(): a connection established from then on has its
    // event in the ring, so this dump misses nothing. What it lists is adopted (or, with
    // report_existing, started); an event for an adopted connection starts it (it is newer).
    // After a reload, what the predecessor followed and the state changes of the gap come from
    // its program (shelved, still attached): the dump below then starts only what neither knew,
    // instead of adopting silently the connections established while no plugin ran.
    // At a daemon's start, the flow journal's connections to start again are too.
    std::size_t inherited = 0, followed = 0, excluded = 0;
    scanner::ConnectionTracker::Retagged retagged;
    const bool predecessor_taken = predecessor_ != nullptr;
    bool repair = false;  // the dump below is a resync: the predecessor's ring lost records
    std::vector<FlowKey> restarts;
    if (predecessor_) {
      repair = take_predecessors_ring(out);
      followed = tracker_.tracked();
    } else {
      inherited = scanner::inherit_flows(tracker_, ctx_.status, name_);
      restarts = scanner::expect_restarts(tracker_, ctx_.status, name_);
    }
    // A reload that excludes more (internal_networks, ignore_private): what the predecessor
    // started there ends now, and its end takes the mark out of the marker's map.
    events_.clear();
    tracker_.end_excluded(Clock::now(), events_);
    excluded = events_.size();
    // A changed port rule or fixed tag: the connections it tags otherwise end, and start again with
    // their new tag; an open one it tags now starts.
    retagged =
        tracker_.retag(Clock::now(), events_, options_.retag_with ? &options_.retag_with : nullptr);
    out.publish(events_);
    const std::size_t found = resync(out, repair);
    const std::string restarted_text = scanner::restarts_said(restarts, events_);
    if (!restarts.empty()) ctx_.status->restarts_started(name_);
    const std::string ring = fmt::format(
        "following TCP state changes in the kernel (ring buffer {} bytes)", ring_bytes_);
    if (predecessor_taken)
      log_->info(
          "{} after a reload; {} followed on from before the reload, gap included; {} more found "
          "by the dump{}",
          ring, counted(followed, "connection", "connections"), found,
          scanner::reload_changes_said(excluded, retagged));
    else if (restarted_ || inherited)
      // The predecessor polled (it had no program to hand on): what it started is followed on from
      // the daemon's status, the rest of the dump adopted as at a start. Not a reload: what the
      // previous flowd reported and left live (the flow journal, core/flow_journal.hpp).
      log_->info(
          "{} after a {}; {} started before the {} followed on; {} more found by the dump{}{}{}",
          ring, restarted_ ? "reload" : "restart", counted(inherited, "connection", "connections"),
          restarted_ ? "reload" : "restart", found,
          options_.report_existing ? " (reported)" : " (not reported)",
          scanner::reload_changes_said(excluded, retagged), restarted_text);
    else if (options_.report_existing)
      log_->info("{}; {} found at start, {} reported (report_existing){}", ring,
                 counted(tracker_.tracked(), "connection", "connections"), tracker_.started(),
                 restarted_text);
    else
      log_->info("{}; {} adopted at start (not reported){}", ring,
                 counted(tracker_.tracked() - tracker_.started(), "connection", "connections"),
                 restarted_text);
    if (owners_) {
      std::size_t owned = 0;
      for (const auto& l : owners_->listeners()) owned += l.owned;
      log_->info(
          "connections of processes named '{}' get a pair from flow_ids ({} of theirs found at "
          "{})",
          owners_->process(), counted(owned, "listening port", "listening ports"),
          restarted_ ? "the reload" : "start");
    }
    if (mark_followed_ && (restarted_ || inherited)) mark_live_flows();
    drain(out);
    while (!stop.stop_requested()) {
      epoll_event ev{};
      int n;
      {
        WaitingScope waiting;
        n = epoll_wait(ep.get(), &ev, 1, -1);
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::system_error(errno, std::generic_category(), "epoll_wait");
      if (n != 1) continue;
      if (ev.data.fd == read_timer.get()) {
        std::uint64_t ticks;
        [[maybe_unused]] auto r = ::read(read_timer.get(), &ticks, sizeof ticks);
        if (int n = drain(out); n > 0)
          log_->debug("the once-a-second read of the ring found {} records", n);
      } else if (ev.data.fd == resync_timer_.get()) {
        std::uint64_t ticks;
        [[maybe_unused]] auto r = ::read(resync_timer_.get(), &ticks, sizeof ticks);
        drain(out);
        periodic_resync(out);
      } else if (ev.data.fd == bpf_->fd()) {
        drain(out);
      }
    }
    // No successor (the plugin left the configuration, or flowd stops): the flows it started end
    // now, as the netflow plugin's do; a successor follows them on instead.
    if (!successor_) {
      drain(out);
      scanner::end_unless_succeeded(tracker_, successor_, out);
    }
  }

  void before_stop(bool successor) override {
    successor_ = successor;
    if (fallback_) fallback_->before_stop(successor);
  }

  void stop() override {
    if (fallback_) fallback_->stop();
    // A reload's stop: the program stays attached, its ring buffer filling, until the successor
    // has its own and reads this one's (see run()); polling, there is nothing to hand on but the
    // fact of the reload. The daemon's own stop detaches it now.
    if (ctx_.shelf && successor_ && !ctx_.stopping.stop_requested()) {
      auto item = std::make_unique<ShelvedKernel>();
      if (bpf_) {
        bpf_->set_handler([](const flowd_conn_event&) {});  // nothing reads it until then
        item->lost = lost_;
        item->missed = missed_;
        item->marked = marked_;
        item->marked_map = bpf_->marking() ? marker_map_id_ : 0;
        item->events = std::move(bpf_);
        item->tracker.emplace(std::move(tracker_));
        item->handover = std::move(handover_);
      }
      ctx_.shelf->put(shelf_key(), std::move(item));
    }
    bpf_.reset();
    marker_.reset();
  }

 private:
  std::string shelf_key() const { return std::string("plugin.") + name_ + ".program"; }

  // Reads the predecessor's ring (the state changes up to its detach), publishes what they say,
  // and lets its program go. True when records were lost (or skipped by the kernel) since its
  // plugin last counted: the dump that follows is then a resync.
  bool take_predecessors_ring(Publisher& out) {
    events_.clear();
    clock_.refresh();
    predecessor_->detach();
    const std::uint64_t detached = boot_ns_now();
    const int n = predecessor_->consume();
    handover_.old_done(detached);
    if (n < 0)
      log_->warn("reading the previous program's ring buffer failed ({}); the dump repairs it",
                 std::strerror(-n));
    else
      events_total_->Increment(n);
    if (predecessor_marks_count_)
      if (std::uint64_t marked = predecessor_->marked(); marked > predecessor_marked_)
        premarked_total_->Increment(static_cast<double>(marked - predecessor_marked_));
    const std::uint64_t lost = predecessor_->lost(), missed = predecessor_->missed();
    const bool repair =
        account_losses(lost - std::min(predecessor_lost_, lost),
                       missed - std::min(predecessor_missed_, missed), " across the reload") ||
        n < 0;
    log_->debug(
        "read the previous program's ring: {} records; {} copies skipped so far; {} records of "
        "the overlap may be in this program's ring",
        n, handover_.skipped(), handover_.pending());
    out.publish(events_);
    if (predecessor_->marking())
      if (const std::size_t swept = sweep_old_marks(predecessor_->own_marks_fd()))
        log_->info(
            "took {} label{} out of the marker's map that the previous program wrote under the "
            "old rules, which this configuration does not give",
            swept, swept == 1 ? "" : "s");
    predecessor_.reset();
    return repair;
  }

  // Reads what waits in the ring, publishes it, and resyncs if the ring refused records meanwhile.
  // The marker's map is looked at first: marks the program wrote into a map the marker no longer
  // reads are not counted as first-packet marks.
  // Returns the number of records read.
  int drain(Publisher& out) {
    follow_marker_map(out);
    events_.clear();
    clock_.refresh();
    int n = bpf_->consume();
    if (n < 0) throw std::system_error(-n, std::generic_category(), "ring_buffer__consume");
    events_total_->Increment(n);
    if (marker_)
      if (std::uint64_t marked = bpf_->marked(); marked != marked_) {
        premarked_total_->Increment(static_cast<double>(marked - marked_));
        marked_ = marked;
      }
    if (owners_)
      if (std::uint64_t unknown = bpf_->owner_unknown(); unknown != owner_unknown_) {
        owner_unknown_total_->Increment(static_cast<double>(unknown - owner_unknown_));
        owner_unknown_ = unknown;
      }
    out.publish(events_);
    std::uint64_t lost = bpf_->lost(), missed = bpf_->missed();
    if (account_losses(lost - lost_, missed - missed_, "")) {
      lost_ = lost;
      missed_ = missed;
      resync(out, true);
    }
    tracked_->Set(static_cast<double>(tracker_.tracked()));
    return n;
  }

  // Counts and logs (rate-limited) what a program's ring refused (`lost`) and the state changes
  // the kernel skipped it for (`missed`), since they were last counted; `when`: the moment, for the
  // log (empty: an ordinary read). True when there is something for a resync to repair.
  bool account_losses(std::uint64_t lost, std::uint64_t missed, std::string_view when) {
    if (lost) {
      lost_total_->Increment(static_cast<double>(lost));
      limited_warn(*log_, lost_limiter_,
                   "the ring buffer was full{}: {} lost; resyncing with a sock_diag dump (a larger "
                   "ring_buffer_size avoids it)",
                   when, counted(lost, "TCP state change", "TCP state changes"));
    }
    if (missed) {
      missed_total_->Increment(static_cast<double>(missed));
      limited_warn(*log_, missed_limiter_,
                   "the kernel skipped the program for {}{} (each happened on a CPU where the "
                   "program ran already, which BPF does not nest); resyncing with a sock_diag dump",
                   counted(missed, "TCP state change", "TCP state changes"), when);
    }
    return lost || missed;
  }

  // A reload that changed the marker's map while this plugin kept running: a new map (a changed
  // max_flows, a marker added), none (match_all, the marker removed), or the map again (match_all
  // turned off). Its program writes the map it was loaded with, or none. A program for the map
  // now is loaded and attached beside it, the old one's ring is read up to that instant (as a
  // reload's successor reads its predecessor's), and the old one goes. Looked at before each read
  // of the ring: the first connection after the change is marked by user space's start, the next
  // ones from their first packet again. The marks the old program made since the last read went
  // into a map the marker no longer reads (the reload came before the events that woke this
  // read): not counted in flowd_kernel_first_packet_marks_total.
  void follow_marker_map(Publisher& out) {
    if (!ctx_.status) return;
    auto now = ctx_.status->marker();
    if (now == probe_seen_) return;
    // No marker while a reload is applied: most likely the marker being replaced (it stops before
    // its successor starts). The map this program writes stays valid (marker_ holds its
    // descriptor); the check comes again at the first read after the reload.
    // Before, the program was switched to no map and back, and the log said no marker ran.
    if (!now && probe_seen_ && ctx_.status->reloading()) return;
    const int fd = now ? now->flow_map_fd() : -1;
    const std::uint32_t id = fd >= 0 ? map_info(fd).id : 0;
    if (id == marker_map_id_) {
      probe_seen_ = now;
      if (marker_)
        marker_ = std::move(now);  // the same map under a new probe (the marker restarted)
      return;
    }
    const bool was_marking = bpf_->marking();
    const std::uint32_t marked_map = was_marking ? marker_map_id_ : 0;
    marker_.reset();
    auto marks = first_packet_marks(bpf_.get());
    if (!marks && !was_marking) return;  // nothing the kernel can mark, before or now
    std::unique_ptr<ConnEvents> next;
    try {
      const std::uint64_t attach = boot_ns_now();
      next = std::make_unique<ConnEvents>(ring_bytes_, netns_, own_ring_handler(), marks,
                                          owners_.has_value());
      if (owners_) next->copy_owners_from(*bpf_);
      handover_.begin(attach);  // before either ring is read again
    } catch (const LoadError& e) {
      marker_.reset();  // no second try: the old program keeps following connections
      log_->warn(
          "the marker's flow map changed in a reload, and the program for the {} cannot be "
          "loaded ({}): connections are marked once user space sees them, not from the first "
          "packet",
          marks ? "new one" : "change", e.what());
      return;
    }
    bpf_->set_handler(old_ring_handler());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = next->fd();
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, next->fd(), &ev) != 0)
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, bpf_->fd(), nullptr);
    events_.clear();
    clock_.refresh();
    bpf_->detach();
    const std::uint64_t detached = boot_ns_now();
    if (int n = bpf_->consume(); n > 0) events_total_->Increment(n);
    handover_.old_done(detached);
    // What the old ring refused, or the kernel skipped its program for, since the last read: a
    // resync once the new program runs (nothing else would repair it: the counts start again).
    const bool repair = account_losses(
        bpf_->lost() - std::min(lost_, bpf_->lost()),
        bpf_->missed() - std::min(missed_, bpf_->missed()),
        marks ? " before the switch to the marker's new map"
              : " before the switch to a program that marks nothing (the marker has no map now)");
    out.publish(events_);
    bpf_ = std::move(next);
    lost_ = marked_ = missed_ = 0;
    if (repair) resync(out, true);
    if (!marks)
      log_->info(
          "the marker has no flow map to mark after a reload ({}): the kernel plugin's program "
          "marks nothing{}",
          now ? "match_all" : "no marker runs",
          now ? "" : "; it marks from the first packet again when a marker's map comes back");
    else if (!was_marking)
      log_->info(
          "the marker's flow map is back after a reload (match_all off, or a marker added): the "
          "kernel plugin's program marks it from the first packet again ({})",
          rules_text(*marks));
    else
      log_->info(
          "the marker's flow map changed in a reload: the kernel plugin's program now marks the "
          "new map from the first packet");
    if (marks && !holds_flows_of(marked_map)) mark_live_flows();
  }

  // Whether the marker's map now (marker_, marker_map_id_) holds what this plugin's flows had in
  // the map `marked` (a kernel id; 0: none, the program marked nothing): it is that map, or the
  // marker's copy of it made at its start (a reload that resized it).
  bool holds_flows_of(std::uint32_t marked) const {
    return marked != 0 && marker_ &&
           (marked == marker_map_id_ || marker_->carried_from() == marked);
  }

  // The marker's map appeared while connections were followed (a marker added by a reload, its map
  // back after match_all, a reload's successor with a map its predecessor's program did not write):
  // no marker heard the start of those that opened meanwhile, so nothing marks them. Each started
  // connection the map does not hold is written in as the marker writes a start (its tag, random
  // entropy bits: one flow, one label from then on) and recorded as the program's own mark, so that
  // its end takes it out as it takes the program's (at CLOSE; the marker's at the `end`). An entry
  // already there (the marker's, another plugin's) is left as it is, as the program leaves it.
  void mark_live_flows() {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const int map = marker_->flow_map_fd(), own = bpf_->own_marks_fd();
    std::size_t written = 0, held = 0, refused = 0;
    int refusal = 0;
    for (const FlowID& f : tracker_.started_flows(Clock::now())) {
      // The label is IPv6's (the addresses are IPv4 here when the socket's are IPv4-mapped), and
      // the marker marks no tag wider than it.
      if (f.src.family != AF_INET6 || f.dst.family != AF_INET6 ||
          std::memcmp(f.dst.bytes.data(), kMapped, sizeof kMapped) == 0 || f.experiment > 511 ||
          f.activity > 63)
        continue;
      flowd_flow_key key;
      std::memset(&key, 0, sizeof key);  // padding included: the kernel hashes every byte
      std::memcpy(key.daddr, f.dst.bytes.data(), sizeof key.daddr);
      key.sport = htons(f.src_port);
      key.dport = htons(f.dst_port);
      key.proto = IPPROTO_TCP;
      std::uint32_t label = 0;
      if (bpf_map_lookup_elem(map, &key, &label) == 0) {
        ++held;
        continue;
      }
      label = make_label(f.experiment, f.activity, random_label_entropy());
      // Recorded first: a CLOSE the program sees in between finds it and takes the entry out.
      bpf_map_update_elem(own, &key, &label, BPF_ANY);
      if (bpf_map_update_elem(map, &key, &label, BPF_NOEXIST) == 0) {
        ++written;
        continue;
      }
      if (errno == EEXIST) {
        ++held;
      } else if (refused++ == 0) {
        refusal = errno;
      }
      std::uint32_t mine = 0;
      if (bpf_map_lookup_elem(own, &key, &mine) == 0 && mine == label)
        bpf_map_delete_elem(own, &key);
    }
    // Nothing written (match_all off again: the marker's map followed every start meanwhile) is
    // not news.
    log_->log(
        written || refused ? spdlog::level::info : spdlog::level::debug,
        "wrote {} it follows into the marker's map, which did not hold them (they opened "
        "while the map was not there: no start of theirs marked them); {} held already{}",
        counted(written, "live connection", "live connections"), held,
        refused ? fmt::format("; the map refused {} ({})", refused, std::strerror(refusal)) : "");
  }

  // "2 port rules and the fixed tag": what the program marks from the first packet.
  static std::string rules_text(const FirstPacketMarks& marks) {
    std::string text;
    if (!marks.port_labels.empty())
      text = counted(marks.port_labels.size(), "port rule", "port rules");
    if (marks.default_label) text += text.empty() ? "the fixed tag" : " and the fixed tag";
    return text;
  }

  // What the kernel can decide alone (a tag by local port or the fixed one), when a marker with a
  // flow map runs in this flowd (backends start before plugins); nullopt otherwise.
  // `predecessor`: a reload's, or the program loaded for the marker's map before it changed, whose
  // record of its own marks this program takes over (if it marked: one that did not has a record
  // of one entry). Records the marker's probe and map looked at (probe_seen_, marker_map_id_).
  std::optional<FirstPacketMarks> first_packet_marks(const ConnEvents* predecessor) {
    std::shared_ptr<const MarkerProbe> probe = ctx_.status ? ctx_.status->marker() : nullptr;
    probe_seen_ = probe;
    marker_map_id_ = 0;
    if (!probe || probe->flow_map_fd() < 0) return std::nullopt;
    auto fits = [](const scanner::Tag& t) { return t.experiment <= 511 && t.activity <= 63; };
    FirstPacketMarks marks;
    marks.flow_map_fd = probe->flow_map_fd();
    const bpf_map_info info = map_info(marks.flow_map_fd);
    marker_map_id_ = info.id;
    marks.own_marks_size = info.max_entries;
    if (predecessor && predecessor->marking()) marks.own_marks_fd = predecessor->own_marks_fd();
    // With process ownership, a connection without a rule gets the fixed tag only if it is not
    // the process's, which user space decides: the kernel marks by the rules alone then.
    if (tagging_->fixed_tag_decides() && rules_.fallback && fits(*rules_.fallback))
      marks.default_label = make_label(rules_.fallback->experiment, rules_.fallback->activity, 0);
    for (const auto& [port, tag] : rules_.by_port)
      if (fits(tag))
        marks.port_labels.emplace_back(port, make_label(tag.experiment, tag.activity, 0));
    if (!marks.default_label && marks.port_labels.empty()) return std::nullopt;
    auto unmarked = [&](const net::Prefix& p) {
      if (p.address.family != AF_INET6) return;
      std::array<std::uint8_t, 16> addr{};
      std::memcpy(addr.data(), p.address.bytes.data(), addr.size());
      marks.unmarked_networks.emplace_back(addr, p.length);
    };
    for (const auto& p : options_.filter.internal) unmarked(p);
    if (options_.filter.ignore_private)
      for (const auto& p : scanner::private_networks()) unmarked(p);
    marker_ = std::move(probe);  // keeps the map's descriptor open for unmark()
    return marks;
  }

  // Whether the program marked the connection of `e` at its start (what first_packet_marks gave
  // it: an IPv6 peer, a rule for its port or the fixed tag).
  bool premarked(const flowd_conn_event& e) const {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!marker_ || e.family != AF_INET6 ||
        std::memcmp(e.remote_addr, kMapped, sizeof kMapped) == 0)
      return false;
    auto it = rules_.by_port.find(e.local_port);
    const scanner::Tag* tag = it != rules_.by_port.end()      ? &it->second
                              : tagging_->fixed_tag_decides() ? &*rules_.fallback
                                                              : nullptr;
    return tag && tag->experiment <= 511 && tag->activity <= 63;
  }

  // The marks a reload's predecessor's program made that this configuration would not make (a rule
  // removed or changed, a network excluded): a connection it marked between its plugin's last read
  // and this plugin's takeover, which this plugin's rules leave unreported, kept the old label for
  // its life (try17b F2). Each entry of the program's record (`own_fd`, flowd_own_marks) whose
  // label is not the one this configuration gives its local port is taken out of the marker's map
  // if the map still holds it (an entry rewritten since, by a start, stays). Returns how many.
  std::size_t sweep_old_marks(int own_fd) {
    const auto probe = ctx_.status ? ctx_.status->marker() : nullptr;
    if (!probe || probe->flow_map_fd() < 0 || own_fd < 0) return 0;
    const int map = probe->flow_map_fd();
    auto given = [&](const flowd_flow_key& k) -> std::optional<std::uint32_t> {
      const std::uint16_t port = ntohs(k.sport);
      auto it = rules_.by_port.find(port);
      const scanner::Tag* tag = it != rules_.by_port.end()      ? &it->second
                                : tagging_->fixed_tag_decides() ? &*rules_.fallback
                                                                : nullptr;
      if (!tag || tag->experiment > 511 || tag->activity > 63 ||
          !options_.filter.accepts(address_of(k.daddr, AF_INET6)))
        return std::nullopt;
      return make_label(tag->experiment, tag->activity, 0);
    };
    std::vector<flowd_flow_key> stale;
    flowd_flow_key key{}, next{};
    for (const void* at = nullptr; bpf_map_get_next_key(own_fd, at, &next) == 0; at = &key) {
      key = next;
      std::uint32_t own = 0;
      if (bpf_map_lookup_elem(own_fd, &key, &own) != 0) continue;
      const auto want = given(key);
      if (!want || (*want & kLabelSemanticMask) != (own & kLabelSemanticMask)) stale.push_back(key);
    }
    std::size_t swept = 0;
    for (const auto& k : stale) {
      std::uint32_t own = 0, now = 0;
      if (bpf_map_lookup_elem(own_fd, &k, &own) != 0) continue;
      if (bpf_map_lookup_elem(map, &k, &now) == 0 && now == own &&
          bpf_map_delete_elem(map, &k) == 0) {
        ++swept;
        unmarked_total_->Increment();
      }
      bpf_map_delete_elem(own_fd, &k);
    }
    return swept;
  }

  // Takes the program's entry out of the marker's map: user space does not report the connection.
  // Only an entry the program wrote (its flowd_own_marks) and nobody rewrote since: a mark another
  // plugin's start put there (np_api, the API: a connection this plugin excludes, reported by the
  // transfer tool) stays (issue 15).
  void unmark(const flowd_conn_event& e) { unmark(e.remote_addr, e.local_port, e.remote_port); }
  void unmark(const std::uint8_t* remote_ipv6, std::uint16_t local_port,
              std::uint16_t remote_port) {
    flowd_flow_key key;
    std::memset(&key, 0, sizeof key);
    std::memcpy(key.daddr, remote_ipv6, sizeof key.daddr);
    key.sport = htons(local_port);
    key.dport = htons(remote_port);
    key.proto = IPPROTO_TCP;
    std::uint32_t own = 0, now = 0;
    const int own_fd = bpf_->own_marks_fd();
    if (bpf_map_lookup_elem(own_fd, &key, &own) != 0) return;
    if (bpf_map_lookup_elem(marker_->flow_map_fd(), &key, &now) == 0 && now == own &&
        bpf_map_delete_elem(marker_->flow_map_fd(), &key) == 0)
      unmarked_total_->Increment();
    bpf_map_delete_elem(own_fd, &key);
  }

  // The handler of the program attached last: records an older program handed already are
  // skipped. And that of a program being replaced: each record is handled and remembered.
  ConnEvents::Handler own_ring_handler() {
    return [this](const flowd_conn_event& e) {
      if (!handover_.duplicate(e)) on_event(e);
    };
  }
  ConnEvents::Handler old_ring_handler() {
    return [this](const flowd_conn_event& e) {
      if (handover_.old_record(e)) on_event(e);
    };
  }

  void on_event(const flowd_conn_event& e) {
    scanner::Connection c;
    c.local = address_of(e.local_addr, e.family);
    c.remote = address_of(e.remote_addr, e.family);
    c.local_port = e.local_port;
    c.remote_port = e.remote_port;
    c.state = e.newstate;
    c.cookie = e.cookie;
    if (e.owner != FLOWD_CONN_OWNER_NONE) {
      std::memcpy(c.comm.data(), e.comm, c.comm.size());
      c.comm.back() = '\0';
    } else if (owners_ && e.kind == FLOWD_CONN_START && e.oldstate == netlink::kTcpSynRecv) {
      // Accepted on a listener older than the program before resync() told the program about
      // it: the owners of the listeners resync() found.
      c = owners_->with_owner(c);
    }
    if (collect_touched_)
      touched_.insert(FlowKey{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port});
    if (e.kind == FLOWD_CONN_START) {
      confirm(c, FlowState::kStart);
      if (!tracker_.established(c, clock_.wall(e.ts_boot_ns), events_) && premarked(e)) unmark(e);
    } else if (e.kind == FLOWD_CONN_END) {
      confirm(c, FlowState::kEnd);
      closed_cookies_.add(c.cookie);
      tracker_.closed(c, clock_.wall(e.ts_boot_ns), events_);
    }
  }

  // Every resync_interval (after the ring is read): one dump checks the connections followed
  // against the kernel's. The kernel does not always run the program for a state change: besides
  // the skips it counts (ConnEvents::missed), a few in a thousand short connections' closing state
  // changes went without the program and without a count, in softirqs on a loaded machine (Linux
  // 6.18; a tracepoint's other probes saw them). Without this check such a connection would stay
  // started for ever. The ring is read before the dump is used (resync()) and once more after: a
  // start or end the dump made whose record came in that last read was reported by the kernel
  // after all (the tracker ignores that record: it is done); only the others are counted, and
  // said (rate-limited). The check runs resync_interval after the last resync of any kind, on a
  // timer of its own (resync_timer_).
  void periodic_resync(Publisher& out) {
    checks_total_->Increment();
    resync(out, false, &dump_made_);
    drain(out);
    std::size_t starts = 0, ends = 0;
    for (const auto& [key, state] : dump_made_) ++(state == FlowState::kStart ? starts : ends);
    dump_made_.clear();
    if (starts) unreported_starts_->Increment(static_cast<double>(starts));
    if (ends) unreported_ends_->Increment(static_cast<double>(ends));
    if (starts || ends)
      limited_warn(*log_, unreported_limiter_,
                   "the periodic sock_diag check found {} started and {} ended that the kernel "
                   "had not reported (the program did not run for their state change); reported "
                   "now with the dump's time (flowd_kernel_unreported_total)",
                   counted(starts, "connection", "connections"),
                   counted(ends, "connection", "connections"));
  }

  // A record read while dump_made_ holds what a periodic resync made: that start or end was the
  // kernel's after all.
  void confirm(const scanner::Connection& c, FlowState state) {
    if (dump_made_.empty()) return;
    auto it =
        dump_made_.find(FlowKey{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port});
    if (it != dump_made_.end() && it->second == state) dump_made_.erase(it);
  }

  // One sock_diag dump through the tracker: starts what it lists established and does not know,
  // ends what it knows started and the dump no longer lists (or lists closing). Events of a
  // connection opened and closed entirely within the lost records cannot be recovered. Records
  // what it made into `made` (when given), by connection.
  // The ring is read between the dump and its use: the records the kernel wrote while the dump ran
  // (or before it, not yet read: a reload's overlap) are its own word on their connections, with
  // their own times, so the dump only speaks of the connections no record named. Applied first, the
  // dump took a 4-tuple reused within milliseconds for a new socket and then the older records for
  // yet another (an extra zero-length start and end, try15f D1), and ended at the dump's time a
  // connection whose CLOSE record was on its way (try15f D4). A socket whose CLOSE was read already
  // is still listed until tcp_set_state() unhashes it: skipped (closed_cookies_).
  // Returns how many connections the dump added (tracked now, or ended by it, less what was
  // tracked before its use).
  std::size_t resync(Publisher& out, bool count,
                     std::unordered_map<FlowKey, FlowState, FlowKeyHash>* made = nullptr) {
    if (count) resyncs_total_->Increment();
    auto now = Clock::now();
    arm_resync_timer();
    std::string error;
    if (owners_) learn_owners();
    dumped_.clear();
    bool ok = scanner::scan_sock_diag(
        *diag_,
        [&](const scanner::Connection& c) {
          dumped_.push_back(owners_ ? owners_->with_owner(c) : c);
        },
        error);
    if (!ok) {
      // Not a reason to end every connection: the next loss or the next periodic check repairs.
      log_->warn("sock_diag dump failed: {}", error);
      dumped_.clear();
      return 0;
    }
    touched_.clear();
    collect_touched_ = true;
    events_.clear();
    clock_.refresh();
    const int n = bpf_->consume();
    collect_touched_ = false;
    if (n > 0) events_total_->Increment(n);
    out.publish(events_);
    events_.clear();
    const std::size_t before = tracker_.tracked();
    for (const auto& c : dumped_) {
      const FlowKey key{Protocol::kTcp, c.local, c.remote, c.local_port, c.remote_port};
      if (touched_.count(key) || closed_cookies_.contains(c.cookie)) continue;
      tracker_.observe(c, now, events_);
      // One whose start record was lost (or came in a reload's gap) and that is not
      // reported: the mark the program gave it at its start goes, as on_event() does.
      if (marker_ && c.remote.family == AF_INET6 && netlink::carries_data(c.state, c.inode) &&
          !options_.filter.accepts(c.remote))
        unmark(c.remote.bytes.data(), c.local_port, c.remote_port);
    }
    for (const auto& key : touched_) tracker_.keep(key);
    tracker_.finish(now, events_);
    std::size_t ended = 0;
    for (const auto& f : events_) {
      if (f.state == FlowState::kEnd) ++ended;
      if (made) (*made)[FlowKey::of(f)] = f.state;
    }
    const std::size_t found =
        tracker_.tracked() + ended - std::min(before, tracker_.tracked() + ended);
    out.publish(events_);
    // A dump of 100k sockets holds megabytes: not kept between resyncs.
    if (dumped_.capacity() > 4096) std::vector<scanner::Connection>().swap(dumped_);
    touched_.clear();
    return found;
  }

  // The periodic check's timer, from the last resync of any kind (a loss's repair checks as much).
  void arm_resync_timer() {
    if (!resync_timer_) return;
    itimerspec at{};
    const auto ms = resync_interval_.count();
    at.it_value.tv_sec = static_cast<time_t>(ms / 1000);
    at.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000L;
    ::timerfd_settime(resync_timer_.get(), 0, &at, nullptr);
  }

  // Process ownership of what the kernel did not see open: /proc and the listening sockets, read
  // again; the listeners older than the program are told to it, so that the connections they
  // accept from now on get their owner in the kernel too.
  void learn_owners() {
    std::string error;
    if (!owners_->refresh(*diag_, error))
      log_->warn("sock_diag dump of listeners failed: {}", error);
    std::size_t refused = 0;
    for (const auto& l : owners_->listeners())
      if (!bpf_->add_listener(netns_, l.port, l.owned ? owners_->process() : std::string()))
        ++refused;
    if (refused)
      limited_warn(*log_, owner_limiter_, "the map of listeners is full: {} not recorded",
                   counted(refused, "listening port's owner", "listening ports' owners"));
  }

  const char* name_;
  Context& ctx_;
  std::shared_ptr<spdlog::logger> log_;
  scanner::ScannerOptions options_;
  std::shared_ptr<KernelTagger> tagging_;
  scanner::Tagger tagger_;
  std::uint32_t ring_bytes_;
  const scanner::PortRules& rules_;
  std::optional<ProcessOwners> owners_;  // with process ownership
  std::uint32_t netns_ = own_netns_inode();
  scanner::ConnectionTracker tracker_;
  std::shared_ptr<const MarkerProbe> marker_;  // when marking from the first packet
  std::optional<netlink::SockDiag> diag_;
  std::unique_ptr<ConnEvents> bpf_;
  std::unique_ptr<ConnEvents> predecessor_;  // a reload's: read once at the start of run()
  std::uint64_t predecessor_lost_ = 0, predecessor_missed_ = 0, predecessor_marked_ = 0;
  bool predecessor_marks_count_ = false;  // its marks went into the map the marker reads now
  RingHandover handover_;  // the records an old program's ring and the new one's both hold
  std::unique_ptr<PollingFallback> fallback_;
  BootClock clock_;
  std::vector<FlowID> events_;
  std::uint64_t lost_ = 0;
  std::uint64_t missed_ = 0;  // the program's recursion misses, as lost_
  std::uint64_t marked_ = 0;
  std::uint32_t marker_map_id_ = 0;  // the kernel's id of the marker's map looked at last; 0: none
  std::shared_ptr<const MarkerProbe> probe_seen_;  // the marker's probe looked at last
  int epoll_fd_ = -1;                              // run()'s, which follow_marker_map() changes
  std::atomic<bool> successor_{false};  // before_stop: a reload's successor follows the flows on
  bool restarted_ = false;              // started by a reload, in its predecessor's place
  bool mark_followed_ = false;          // run() writes the flows it takes over into the map
  std::uint64_t owner_unknown_ = 0;
  std::chrono::milliseconds resync_interval_;  // between two periodic resyncs
  UniqueFd resync_timer_;  // fires resync_interval after the last resync (run()'s epoll)
  // A resync: what its dump listed, and the connections the ring records read after it named.
  std::vector<scanner::Connection> dumped_;
  std::unordered_set<FlowKey, FlowKeyHash> touched_;
  bool collect_touched_ = false;
  ClosedCookies closed_cookies_;
  // What the periodic resync running now started or ended, until the ring is read after it.
  std::unordered_map<FlowKey, FlowState, FlowKeyHash> dump_made_;
  LogLimiter lost_limiter_, missed_limiter_, owner_limiter_, unreported_limiter_;
  prometheus::Counter *events_total_, *lost_total_, *missed_total_, *resyncs_total_, *checks_total_,
      *unreported_starts_, *unreported_ends_, *premarked_total_, *unmarked_total_,
      *owner_unknown_total_;
  prometheus::Gauge* tracked_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<KernelPlugin>(cfg, ctx, name);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "kernel",
      "TCP connections as the kernel changes their state (BPF tracepoint, ring buffer): start and "
      "end events with the kernel's time; polls like netlink where BPF cannot load",
      kKeys, create};
  return info;
}

}  // namespace flowd::kernel
