// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/ebpf_backend.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cstdarg>
#include <cstring>
#include <mutex>

#include "backends/ebpf/flow_map.hpp"
#include "backends/ebpf/mark_policy.hpp"
#include "backends/ebpf/tc_attachment.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/reload_shelf.hpp"
#include "flowd/scitags_label.hpp"
#include "flowd_marker.h"
#include "flowd_marker.skel.h"

namespace flowd::ebpf {
namespace {

constexpr KeySpec kKeys[] = {
    {"interfaces", KeyType::kList, "",
     "interfaces whose egress is marked; empty: every interface with a global IPv6 address",
     "NETWORK_INTERFACE"},
    {"max_flows",
     KeyType::kInt,
     "100000",
     "size of the flow map (LRU: the least recently used flow goes first)",
     {},
     1,
     10000000},
    {"match_all", KeyType::kBool, "no",
     "tag every outgoing IPv6 TCP/UDP packet with experiment/activity (perfSONAR hosts)"},
    {"experiment", KeyType::kString, "", "match_all: experiment, 0..511 or a registry name"},
    {"activity", KeyType::kString, "", "match_all: activity, 0..63 or a registry name"},
    {"pin_path", KeyType::kPath, "/sys/fs/bpf/flowd/flow_labels",
     "where the flow map is pinned (a BPF file system), so that a restarted flowd keeps marking "
     "the flows it "
     "marked; empty: not pinned (flows are still kept across reloads)"},
};

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
  // An existing clsact qdisc is expected (EEXIST is handled); the kernel's note about it is not
  // news.
  if (level == LIBBPF_WARN && line.find("Exclusivity flag on") == std::string::npos)
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

class EbpfBackend final : public Backend {
 public:
  EbpfBackend(const Section& cfg, Context& ctx)
      : ctx_(ctx),
        interfaces_(cfg.get_list("interfaces")),
        max_flows_(static_cast<std::uint32_t>(cfg.get_int("max_flows"))),
        match_all_(cfg.get_bool("match_all")),
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
        pin_path_(cfg.get("pin_path")) {
    if (match_all_) {
      auto reg = ctx.registry.get();
      auto exp = reg->experiment_id(cfg.get("experiment"));
      auto act = exp ? reg->activity_id(*exp, cfg.get("activity")) : std::nullopt;
      if (!exp || !act)
        throw ConfigError(
            "[backend.ebpf] match_all = yes needs experiment (0..511 or a name) and activity "
            "(0..63 or a name of that experiment); got '" +
            cfg.get("experiment") + "' / '" + cfg.get("activity") + "'");
      match_all_label_ = make_label(*exp, *act, 0);
    }
  }

  ~EbpfBackend() override { release(); }

  void start() override {
    if (auto missing = missing_capabilities(); !missing.empty())
      throw std::runtime_error(
          "the ebpf backend needs CAP_BPF and CAP_NET_ADMIN; this process lacks " + missing +
          " (run flowd as root or grant them; under systemd, run this configuration with "
          "flowd-marker@NAME.service or "
          "flowd.service: flowd@.service drops them)");
    libbpf_set_print(on_libbpf_print);
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
    UniqueFd previous = previous_map();
    const MapShape want{BPF_MAP_TYPE_LRU_HASH, sizeof(flowd_flow_key), sizeof(__u32), max_flows_};
    const bool reuse = previous && map_shape(previous.get()) == want &&
                       bpf_map__reuse_fd(skel_->maps.flowd_flow_labels, previous.get()) == 0;
    if (int rc = flowd_marker__load(skel_); rc != 0) {
      std::string tail;
      {
        std::lock_guard lock(libbpf_mu);
        tail = libbpf_tail;
      }
      release();
      throw std::runtime_error(std::string("the kernel refused the BPF marker (") +
                               std::strerror(-rc) + "):\n" + tail);
    }
    map_fd_ = bpf_map__fd(skel_->maps.flowd_flow_labels);
    if (reuse) {
      log_->info("kept the flow map of the previous marker: {} flow(s) stay marked",
                 count_entries(map_fd_));
    } else if (previous) {
      auto shape = map_shape(previous.get());
      if (shape.key_size == want.key_size && shape.value_size == want.value_size)
        log_->info("copied {} flow(s) from the previous marker's map of {} into the new one of {}",
                   copy_entries(previous.get(), map_fd_, want.key_size, want.value_size),
                   shape.max_entries, max_flows_);
    }
    previous.reset();
    if (!pin_path_.empty()) {
      if (auto err = pin_map(map_fd_, pin_path_); !err.empty())
        log_->warn(
            "cannot pin the flow map at {}: {}; marked flows are kept across reloads, not restarts",
            pin_path_, err);
    }
    auto names = interfaces_.empty() ? interfaces_with_global_ipv6() : interfaces_;
    if (names.empty()) {
      release();
      throw std::runtime_error(
          "[backend.ebpf] no interface has a global IPv6 address; set interfaces");
    }
    try {
      for (const auto& n : names)
        attachments_.push_back(
            std::make_unique<TcAttachment>(n, bpf_program__fd(skel_->progs.flowd_mark)));
    } catch (...) {
      release();
      throw;
    }
    stats_ = std::make_unique<MarkerStats>(bpf_map__fd(skel_->maps.flowd_stats), map_fd_);
    ctx_.hub.add(stats_.get());
    log_->info("marking {} on {} (map of {} flows)",
               match_all_
                   ? fmt::format("every IPv6 TCP/UDP packet with label 0x{:05x}", match_all_label_)
                   : std::string("IPv6 TCP/UDP flows from start to end"),
               fmt::join(names, ", "), max_flows_);
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
    if (match_all_ || flow.state == FlowState::kOngoing) return;
    if (!flow.dst.is_v6()) {
      log_->debug("not marking {} flow to {}: the flow label is IPv6 only",
                  to_string(flow.protocol), flow.dst.to_string());
      return;
    }
    flowd_flow_key key;
    std::memset(&key, 0, sizeof key);  // padding included: the kernel hashes every byte
    std::memcpy(key.daddr, flow.dst.bytes.data(), 16);
    key.sport = htons(flow.src_port);
    key.dport = htons(flow.dst_port);
    key.proto = flow.protocol == Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
    if (flow.state == FlowState::kStart) {
      // Fireflies from other sites may carry ids wider than the label's 9 + 6 bits; masking them
      // would mark the flow with somebody else's experiment.
      if (flow.experiment > 511 || flow.activity > 63) {
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

  void stop() override {
    // For the instance a reload starts next (flowd/reload_shelf.hpp): the map stays alive while the
    // shelf holds a descriptor of it, pinned or not.
    if (ctx_.shelf && map_fd_ >= 0) {
      UniqueFd dup(::fcntl(map_fd_, F_DUPFD_CLOEXEC, 0));
      if (dup) ctx_.shelf->put(kShelfKey, std::make_unique<ParkedMap>(std::move(dup)));
    }
    release();
  }

 private:
  static constexpr const char* kShelfKey = "ebpf:flow_map";
  struct ParkedMap final : ShelfItem {
    explicit ParkedMap(UniqueFd f) : fd(std::move(f)) {}
    UniqueFd fd;
  };

  UniqueFd previous_map() {
    if (ctx_.shelf)
      if (auto item = ctx_.shelf->take(kShelfKey))
        if (auto* parked = dynamic_cast<ParkedMap*>(item.get())) return std::move(parked->fd);
    if (pin_path_.empty()) return {};
    return open_pinned_map(pin_path_);
  }

  void refused(const char* what, int err, const FlowID& flow) {
    update_errors_.Increment();
    limited_warn(*log_, limiter_, "flow map {} refused for [{}]:{}: {}", what, flow.dst.to_string(),
                 flow.dst_port, std::strerror(err));
  }

  void release() {
    if (stats_) ctx_.hub.remove(stats_.get());
    stats_.reset();
    attachments_.clear();
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
  std::string pin_path_;
  flowd_marker* skel_ = nullptr;
  int map_fd_ = -1;
  std::vector<std::unique_ptr<TcAttachment>> attachments_;
  std::unique_ptr<MarkerStats> stats_;
  LogLimiter limiter_;
};

std::unique_ptr<Backend> create(const Section& cfg, Context& ctx) {
  return std::make_unique<EbpfBackend>(cfg, ctx);
}

}  // namespace

const BackendInfo& backend_info() {
  static const BackendInfo info{"ebpf", "IPv6 flow-label marking with a tc BPF program", kKeys,
                                create};
  return info;
}

}  // namespace flowd::ebpf
