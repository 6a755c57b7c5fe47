// SPDX-License-Identifier: Apache-2.0
// The netflow and sflow plugins: receive workers that read UDP (and, on worker 0, IPFIX over TCP),
// decode, track flows and publish their events. The pieces live beside this file: the typed config
// (netflow_config), the metrics (netflow_metrics), the TCP sessions (tcp_session, and their caps,
// idle timeout and accept back-off: tcp_sessions), the workers' wait (worker_loop) and the dump
// (record_dump); the UDP listener is src/common/net/udp_listener.
#include "plugins/netflow/netflow_plugin.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "collector/decoder.hpp"
#include "collector/record_json_writer.hpp"
#include "collector/sflow.hpp"
#include "collector/template_budget.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/udp_listener.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/metrics_hub.hpp"
#include "flowd/record_sink.hpp"
#include "flowd/stop_fd.hpp"
#include "flowd/thread_name.hpp"
#include "plugins/netflow/exporter_series.hpp"
#include "plugins/netflow/flow_tracker.hpp"
#include "plugins/netflow/netflow_config.hpp"
#include "plugins/netflow/netflow_metrics.hpp"
#include "plugins/netflow/observed_metrics.hpp"
#include "plugins/netflow/record_dump.hpp"
#include "plugins/netflow/tcp_session.hpp"
#include "plugins/netflow/tcp_sessions.hpp"
#include "plugins/netflow/template_file.hpp"
#include "plugins/netflow/template_keeper.hpp"
#include "plugins/netflow/worker_loop.hpp"

namespace flowd::netflow {
namespace {

// One UDP receive thread: its own sockets (SO_REUSEPORT siblings of the other workers') and its own
// templates, since the kernel hashes an exporter's datagrams to one socket. Worker 0 also serves
// IPFIX over TCP and the idle-flow timer, on the plugin's own thread.
struct Worker {
  explicit Worker(ExporterSeries& series) : exporters(series) {}

  std::vector<net::UdpListener> udp;
  collector::Decoder decoder;
  collector::SflowDecoder sflow;  // the sflow plugin's
  collector::RecordBatch records;
  std::vector<FlowID> events;
  VolumeBatch volume;
  DecoderCounts counts;
  // The per-exporter counters of the exporters this worker has seen.
  ExporterCache exporters;
  // When counts.by_exporter was last refreshed, and whether the templates changed since.
  std::chrono::steady_clock::time_point templates_published{};
  bool templates_changed = false;
  std::vector<collector::DomainTemplates> by_exporter;  // scratch, swapped into counts
  // The records of one batch as JSON lines for the dump and a record sink
  // (flowd/record_sink.hpp), reused; the sink's key is the exporter's address (record_key_of).
  collector::RecordJsonWriter json_writer;
  std::string record_json, record_key;
  IpAddress record_key_of;
  std::vector<std::size_t> record_ends;
  std::vector<RecordMessage> record_messages;
  // recvmmsg buffers, allocated on the worker's first read (32 x 64 KiB).
  std::optional<net::DatagramBatch> datagrams;
};

class NetflowPlugin final : public Plugin {
 public:
  NetflowPlugin(NetflowConfig cfg, Context& ctx, const char* name)
      : cfg_(std::move(cfg)),
        limits_(shared_budget(cfg_.limits)),
        name_(name),
        owner_("[" + cfg_.section + "] "),
        log_(get_logger(cfg_.wire == Wire::kSflow ? "plugin.sflow" : "plugin.netflow")),
        hub_(ctx.hub),
        registry_(ctx.registry),
        records_(ctx.records),
        heartbeats_(ctx.heartbeats),
        observed_(ctx.metrics),
        metrics_(ctx.metrics, cfg_.wire, cfg_.max_exporter_series),
        tracker_(cfg_.rules, LabelPolicy(cfg_.label_trust, cfg_.label_networks), cfg_.idle_timeout,
                 cfg_.max_flows),
        tcp_(TcpSessionLimits{.max_sessions = cfg_.max_tcp_sessions,
                              .max_per_exporter = cfg_.max_tcp_sessions_per_exporter,
                              .idle_timeout = cfg_.tcp_idle_timeout},
             limits_),
        templates_(cfg_.wire == Wire::kNetflow ? template_file_path(ctx.work_dir, cfg_.section)
                                               : std::string(),
                   cfg_.template_save_interval, cfg_.workers, cfg_.limits, log_,
                   cfg_.wire == Wire::kNetflow ? &ctx.metrics : nullptr) {
    std::vector<const DecoderCounts*> counts;
    for (std::size_t i = 0; i < cfg_.workers; ++i) {
      workers_.push_back(std::make_unique<Worker>(metrics_.series()));
      workers_.back()->decoder = collector::Decoder(limits_);
      workers_.back()->sflow = collector::SflowDecoder(cfg_.sflow_limits);
      counts.push_back(&workers_.back()->counts);
    }
    if (cfg_.wire == Wire::kNetflow) {
      gauges_.emplace(std::move(counts), limits_.budget, metrics_.series());
      hub_.add(&*gauges_);
    }
  }

  ~NetflowPlugin() override {
    if (gauges_) hub_.remove(&*gauges_);
    close_all();
  }

  void start() override {
    const bool shared = workers_.size() > 1;
    for (const auto& ep : cfg_.listen) {
      for (auto& w : workers_)
        w->udp.emplace_back(
            ep.host, ep.port,
            net::UdpBindOptions{.reuse_port = shared, .rcvbuf = cfg_.rcvbuf, .owner = owner_});
      log_->info("collecting {} on {}{}",
                 cfg_.wire == Wire::kSflow ? "sFlow v5" : "NetFlow/IPFIX over UDP", ep.to_string(),
                 shared ? fmt::format(" ({} workers)", workers_.size()) : "");
    }
    for (const auto& ep : cfg_.tcp_listen) {
      tcp_.add_listener(open_tcp_listener(ep, owner_));
      log_->info("collecting IPFIX over TCP on {} (at most {} sessions, {} per exporter{})",
                 ep.to_string(), cfg_.max_tcp_sessions, cfg_.max_tcp_sessions_per_exporter,
                 cfg_.tcp_idle_timeout.count()
                     ? fmt::format(", closed after {} s idle", cfg_.tcp_idle_timeout.count())
                     : "");
    }
    if (!cfg_.dump.empty()) dump_.open(cfg_.dump, owner_);
    std::vector<collector::Decoder*> decoders;
    for (auto& w : workers_) decoders.push_back(&w->decoder);
    templates_.restore(decoders, Clock::now());
    if (cfg_.wire == Wire::kNetflow) {
      // Restored templates count under their own exporter's series (within max_exporter_series,
      // as if it had sent them) from the start, not under "other" until it sends again; after a
      // reload the exporters named before keep their series (ExporterSeries finds them).
      std::vector<collector::DomainTemplates> restored;
      for (auto& w : workers_) w->decoder.count_templates(restored);
      for (const auto& d : restored) metrics_.series().find(SeriesKey{d.address, d.domain, true});
      for (auto& w : workers_) publish_counts(*w, true);
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
        run_worker(workers_stop.get_token(), *workers_[i], out, i);
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
        const std::string who = fmt::format("plugin.{} worker {}", name_, i);
        set_thread_name(who);
        auto hb = heartbeats_ ? heartbeats_->add(who) : nullptr;
        bind_thread_heartbeat(hb.get());
        guarded(i);
        if (hb) hb->enter_wait();  // ended: not stuck
      });
    guarded(0);
    for (auto& t : extra) t.join();
    templates_.write();
    // Flows reported as started get their end now: a stop or a reload that replaces this plugin
    // would otherwise leave them active in every backend for ever.
    std::vector<FlowID> ends;
    {
      std::lock_guard lock(tracker_mu_);
      tracker_.end_all(Clock::now(), ends);
    }
    out.publish(ends);
    if (!failure.empty()) throw std::runtime_error(failure);
  }

  void stop() override { close_all(); }

 private:
  // Closes what a worker read from: UDP sockets, and for worker 0 the TCP listeners and sessions.
  // Only the worker's own thread calls it (or stop() once every worker is joined).
  void close_worker_sockets(Worker& w, bool main) {
    w.udp.clear();
    if (!main) return;
    tcp_.clear();
    w.counts.tcp_sessions.store(0, std::memory_order_relaxed);
  }

  void run_worker(std::stop_token stop, Worker& w, Publisher& out, std::size_t index) {
    const bool main = index == 0;
    StopFd stopfd(stop);
    // Idle flows and template lifetimes are checked a few times per idle_timeout, and on worker 0
    // idle TCP sessions a few times per tcp_idle_timeout.
    // The template file's saves ride on the same timer: a few ticks per template_save_interval,
    // so that a kill -9 loses no more than that interval (TemplateKeeper::tick).
    long tick = cfg_.idle_timeout.count();
    if (main && !tcp_.empty() && cfg_.tcp_idle_timeout.count() > 0)
      tick = std::min<long>(tick, cfg_.tcp_idle_timeout.count());
    if (cfg_.template_save_interval.count() > 0)
      tick = std::min<long>(tick, cfg_.template_save_interval.count());
    WorkerLoop loop(stopfd.fd(), std::chrono::seconds(std::max<long>(1, tick / 4)));
    for (const auto& l : w.udp) loop.add(l.fd());
    if (main) tcp_.watch(loop);
    if (!w.datagrams) w.datagrams.emplace(kBatch, kMaxDatagram);
    auto on_tick = [&] {
      w.events.clear();
      const auto now = Clock::now();
      w.decoder.expire(now);
      templates_.tick(index, w.decoder, now);
      if (main) {
        // TCP sessions: templates another decoder's charge evicted are erased here too.
        for (auto& [fd, s] : tcp_.sessions()) s.decoder().expire(now);
        {
          std::lock_guard lock(tracker_mu_);
          tracker_.expire(now, w.events);
        }
        // Records reach the disk within a tick, for `tail -f` and so that a crash loses little.
        if (dump_.is_open()) dump_.flush();
        for (const auto& peer : tcp_.close_idle(std::chrono::steady_clock::now(), loop)) {
          metrics_.count_tcp_closed(TcpClosure::kIdle);
          limited_warn(*log_, tcp_limiter_,
                       "IPFIX session from {} sent nothing for {} s; closed it", peer.to_string(),
                       cfg_.tcp_idle_timeout.count());
        }
      }
      out.publish(w.events);
      publish_counts(w, true);
    };
    auto on_ready = [&](int fd) {
      w.events.clear();
      if (!main) {
        read_datagrams(w, fd);
      } else if (tcp_.is_listener(fd)) {
        accept_session(fd, loop);
      } else if (tcp_.is_backoff_timer(fd)) {
        tcp_.resume(loop);
      } else if (TcpSession* s = tcp_.find(fd)) {
        if (!read_session(w, *s)) tcp_.close(fd, loop);
      } else {
        read_datagrams(w, fd);
      }
      out.publish(w.events);
      publish_counts(w);
    };
    while (!stop.stop_requested() && loop.run_once(on_tick, on_ready)) {
    }
    templates_.last_snapshot(index, w.decoder);
  }

  void read_datagrams(Worker& w, int fd) {
    // Bounded, so that a flood cannot keep the worker from its stop request, its timer or its other
    // sockets (the epoll wait is level-triggered: what is left is read next round).
    for (int round = 0; round < 64; ++round) {
      const auto now = Clock::now();
      const std::size_t n = w.datagrams->receive(fd, [&](const net::Datagram& d) {
        const collector::Exporter exporter{d.sender.address(), d.sender.port()};
        if (!allowed(exporter.address)) {
          metrics_.count_refused_udp();
          log_refused("datagram", exporter);
          return;
        }
        if (cfg_.wire == Wire::kSflow)
          handle_sflow(w, d.payload, exporter, now);
        else
          handle_payload(w, w.decoder, d.payload, exporter, now);
      });
      if (n < kBatch) return;
    }
  }

  void accept_session(int listener, WorkerLoop& loop) {
    using Outcome = TcpSessions::Accepted::Outcome;
    const auto r = tcp_.accept(listener, loop, [this](const IpAddress& a) { return allowed(a); });
    switch (r.outcome) {
      case Outcome::kNone:
        return;
      case Outcome::kSession:
        limited_log(*log_, session_limiter_, spdlog::level::info, "IPFIX session from {}",
                    r.session->peer().to_string());
        return;
      case Outcome::kNotAllowed:
        metrics_.count_refused_tcp();
        log_refused("IPFIX session", *r.peer);
        return;
      case Outcome::kRefused:
        metrics_.count_tcp_refused(r.refusal);
        limited_warn(*log_, tcp_limiter_, "IPFIX session from {} refused: {}", r.peer->to_string(),
                     r.refusal == TcpRefusal::kMaxSessions
                         ? fmt::format("max_tcp_sessions ({}) are open", cfg_.max_tcp_sessions)
                     : r.refusal == TcpRefusal::kPerExporter
                         ? fmt::format("max_tcp_sessions_per_exporter ({}) are open from it",
                                       cfg_.max_tcp_sessions_per_exporter)
                         : std::string("flowd is nearly out of file descriptors (raise "
                                       "LimitNOFILE or lower max_tcp_sessions)"));
        return;
      case Outcome::kBackoff:
        metrics_.count_tcp_refused(r.refusal);
        limited_warn(*log_, tcp_limiter_,
                     "accepting IPFIX sessions failed: {}; not accepting for {} ms (raise "
                     "LimitNOFILE or lower max_tcp_sessions)",
                     std::strerror(r.error), r.backoff.count());
        return;
    }
  }

  // False when the session ended (peer closed, error, or a stream out of sync: RFC 7011 §10.4).
  bool read_session(Worker& w, TcpSession& s) {
    const auto state = s.read([&](std::span<const std::uint8_t> message) {
      handle_payload(w, s.decoder(), message, s.peer(), Clock::now());
    });
    if (state == TcpSession::State::kClosed || state == TcpSession::State::kFailed) {
      metrics_.count_tcp_closed(state == TcpSession::State::kClosed ? TcpClosure::kPeer
                                                                    : TcpClosure::kError);
      limited_log(
          *log_, session_limiter_, spdlog::level::info, "IPFIX session from {} closed{}",
          s.peer().to_string(),
          state == TcpSession::State::kFailed ? fmt::format(": {}", std::strerror(s.error())) : "");
      return false;
    }
    if (state == TcpSession::State::kOutOfSync) {
      metrics_.count_tcp_closed(TcpClosure::kOutOfSync);
      metrics_.count_error(10, collector::DecodeError::kBadLength,
                           series_of(w, SeriesKey{.address = s.peer().address}));
      limited_warn(*log_, session_limiter_,
                   "IPFIX session from {}: message length {} < 16 or not IPFIX; closing it",
                   s.peer().to_string(), s.bad_length());
      return false;
    }
    return true;
  }

  void handle_payload(Worker& w, collector::Decoder& d, std::span<const std::uint8_t> bytes,
                      const collector::Exporter& from, TimePoint now) {
    w.records.clear();
    auto r = d.decode(bytes, from, now, w.records);
    publish_counts(
        w);  // before the counters: whoever sees the records counted sees their templates
    metrics_.count_export(r, series_of(w, netflow_series_key(bytes, from.address)));
    for (auto e : r.errors) {
      std::uint64_t held = 0;
      if (limiter_.allow(held))
        log_->warn("export from {} (v{}, {} bytes): {}{}", from.to_string(), r.version,
                   bytes.size(), collector::to_string(e),
                   held ? fmt::format(" ({} more not logged)", held) : "");
    }
    log_template_bounds(r, from);
    observe_records(w, from, now);
  }

  // Evictions and refusals by the template bounds, rate-limited, naming the exporters.
  void log_template_bounds(const collector::DecodeResult& r, const collector::Exporter& from) {
    using collector::TemplateEviction, collector::TemplateRefusal;
    const auto evicted = [&](TemplateEviction e) {
      return r.templates_evicted[static_cast<std::size_t>(e)];
    };
    const auto refused = [&](TemplateRefusal e) {
      return r.templates_refused[static_cast<std::size_t>(e)];
    };
    const std::uint32_t by_exporter = evicted(TemplateEviction::kExporterBytes),
                        by_total = evicted(TemplateEviction::kTotalBytes),
                        too_large = refused(TemplateRefusal::kTooLarge);
    if (by_exporter + by_total + too_large == 0) return;
    std::uint64_t held = 0;
    if (!template_limiter_.allow(held)) return;
    const std::string more = held ? fmt::format(" ({} more not logged)", held) : "";
    if (too_large)
      log_->warn(
          "export from {}: {} template(s) refused, each larger than "
          "max_template_bytes_per_exporter = {} bytes{}",
          from.to_string(), too_large, limits_.max_template_bytes_per_exporter, more);
    if (by_exporter + by_total)
      log_->warn(
          "export from {}: {} template(s) evicted to make room ({} of {} over "
          "max_template_bytes_per_exporter = {}, {} over max_template_bytes = {}; the last "
          "from {}){}",
          from.to_string(), by_exporter + by_total, by_exporter, from.address.to_string(),
          limits_.max_template_bytes_per_exporter, by_total, limits_.max_template_bytes,
          r.evicted_from.to_string(), more);
  }

  void handle_sflow(Worker& w, std::span<const std::uint8_t> bytes, const collector::Exporter& from,
                    TimePoint now) {
    w.records.clear();
    auto r = w.sflow.decode(bytes, from, now, w.records);
    metrics_.count_sflow(r, series_of(w, sflow_series_key(bytes, from.address)));
    for (std::size_t i = 0; i < r.errors.size(); ++i) {
      if (r.errors[i] == 0) continue;
      std::uint64_t held = 0;
      if (limiter_.allow(held))
        log_->warn("sFlow datagram from {} ({} bytes): {}{}", from.to_string(), bytes.size(),
                   collector::to_string(static_cast<collector::SflowError>(i)),
                   held ? fmt::format(" ({} more not logged)", held) : "");
    }
    observe_records(w, from, now);
  }

  // Every record just decoded, as `flowd decode` writes it (collector/record_json_writer.hpp,
  // written once for both), to the dump file and to the backend that publishes records (the kafka
  // backend's records = yes), keyed by the exporter's address. One buffer of JSON lines for the
  // batch: the dump takes it whole; the sink takes a view of each line without its newline, taken
  // once the buffer no longer grows.
  void write_records(Worker& w, RecordSink* sink) {
    w.record_json.clear();
    w.record_ends.clear();
    for (const auto& rec : w.records) {
      w.json_writer.append(w.record_json, rec);
      w.record_ends.push_back(w.record_json.size());
      w.record_json.push_back('\n');
    }
    if (dump_.is_open()) dump_.write(w.record_json);
    if (!sink) return;
    // Every record of one batch comes from one exporter (one sFlow datagram: one agent). sFlow
    // records are keyed by the agent the datagram names, as the per-agent metrics are, so that
    // agents behind one relay still spread over partitions.
    const IpAddress* key_address = &w.records[0].exporter.address;
    if (cfg_.wire == Wire::kSflow)
      if (const auto* agent =
              w.records[0].find(static_cast<std::uint16_t>(collector::SflowElement::kAgentAddress),
                                collector::kInmonPen);
          agent && (agent->value.kind == collector::ValueKind::kIpv4 ||
                    agent->value.kind == collector::ValueKind::kIpv6))
        key_address = &agent->value.ip;
    const IpAddress& exporter = *key_address;
    if (w.record_key.empty() || !(w.record_key_of == exporter)) {
      w.record_key = exporter.to_string();
      w.record_key_of = exporter;
    }
    w.record_messages.clear();
    std::size_t begin = 0;
    for (std::size_t end : w.record_ends) {
      w.record_messages.push_back(
          {w.record_key, std::string_view(w.record_json).substr(begin, end - begin)});
      begin = end + 1;
    }
    sink->offer(w.record_messages);
  }

  // Dump, flow tracking, labels and volume of the records just decoded into w.records.
  void observe_records(Worker& w, const collector::Exporter& from, TimePoint now) {
    if (w.records.empty()) return;
    std::shared_ptr<RecordSink> sink = records_ ? records_->sink() : nullptr;
    if (dump_.is_open() || sink) write_records(w, sink.get());
    const auto registry = registry_.get();
    w.volume.clear();
    std::array<double, kLabelResultCount> labels{};
    std::size_t overflow_before, overflow_after;
    {
      std::lock_guard lock(tracker_mu_);
      overflow_before = tracker_.overflow();
      Observation o;
      for (const auto& rec : w.records) {
        tracker_.observe(rec, now, registry, w.events, o);
        if (o.label) ++labels[static_cast<std::size_t>(*o.label)];
        if (!rec.options) w.volume.add(rec, o.tag);
      }
      overflow_after = tracker_.overflow();
    }
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] > 0) observed_.count_label(static_cast<LabelResult>(i), labels[i]);
    observed_.add(w.volume, registry);
    if (overflow_after > overflow_before) {
      metrics_.count_overflow(overflow_after - overflow_before);
      std::uint64_t held = 0;
      if (overflow_limiter_.allow(held))
        log_->warn(
            "max_flows flows are tracked: {} more flows from {} not tracked, their events lost{}",
            overflow_after - overflow_before, from.to_string(),
            held ? fmt::format(" ({} more warnings not logged)", held) : "");
    }
  }

  // The worker's counters for `key`; the first exporter put under "other" is logged, and then at
  // most one a minute.
  ExporterCounters& series_of(Worker& w, const SeriesKey& key) {
    bool folded = false;
    ExporterCounters& c = w.exporters.get(key, folded);
    if (folded) {
      const bool sflow = cfg_.wire == Wire::kSflow;
      limited_warn(
          *log_, fold_limiter_,
          "{} {}{} is counted under {}=\"other\": max_exporter_series is {} and {} {} have "
          "series of their own",
          sflow ? "sFlow agent" : "exporter", key.address.to_string(),
          key.has_domain ? fmt::format(" {} {}", sflow ? "sub-agent" : "domain", key.domain)
                         : std::string(),
          sflow ? "agent" : "exporter", cfg_.max_exporter_series, metrics_.series().named(),
          sflow ? "agents" : "exporters");
    }
    return c;
  }

  bool allowed(const IpAddress& a) const {
    if (cfg_.allow.empty()) return true;
    for (const auto& p : cfg_.allow)
      if (p.contains(a)) return true;
    return false;
  }

  void log_refused(const char* what, const collector::Exporter& from) {
    std::uint64_t held = 0;
    if (refused_limiter_.allow(held))
      log_->warn("{} from {} refused: not in allow{}", what, from.to_string(),
                 held ? fmt::format(" ({} more not logged)", held) : "");
  }

  // What the scrape-time gauges read. TCP sessions belong to worker 0. The templates per exporter
  // take a walk over every template: done when their count changed (past 1,024 templates at most
  // once a second) and on the timer (`tick`).
  void publish_counts(Worker& w, bool tick = false) {
    std::size_t t = w.decoder.template_count(), p = w.decoder.pending_count(),
                pb = w.decoder.pending_bytes();
    if (&w == workers_.front().get()) {
      for (const auto& [fd, s] : tcp_.sessions()) {
        t += s.decoder().template_count();
        p += s.decoder().pending_count();
        pb += s.decoder().pending_bytes();
      }
      w.counts.tcp_sessions.store(tcp_.size(), std::memory_order_relaxed);
    }
    if (cfg_.wire == Wire::kNetflow) publish_templates(w, t, tick);
    w.counts.templates.store(t, std::memory_order_relaxed);
    w.counts.pending.store(p, std::memory_order_relaxed);
    w.counts.pending_bytes.store(pb, std::memory_order_relaxed);
  }

  void publish_templates(Worker& w, std::size_t total, bool tick) {
    if (total != w.counts.templates.load(std::memory_order_relaxed)) w.templates_changed = true;
    if (!w.templates_changed && !tick) return;
    const auto now = std::chrono::steady_clock::now();
    // A small store is walked at once (microseconds); a large one at most once a second, so that
    // thousands of exporters sending their first templates do not cost a walk each.
    if (!tick && total > kTemplatesWalkedAtOnce &&
        now - w.templates_published < std::chrono::seconds(1))
      return;
    w.templates_published = now;
    w.templates_changed = false;
    w.by_exporter.clear();
    w.decoder.count_templates(w.by_exporter);
    if (&w == workers_.front().get())
      for (const auto& [fd, s] : tcp_.sessions()) s.decoder().count_templates(w.by_exporter);
    std::lock_guard lock(w.counts.mu);
    w.counts.by_exporter.swap(w.by_exporter);
  }

  void close_all() {
    for (auto& w : workers_) close_worker_sockets(*w, &w == &workers_.front());
    dump_.close();
  }

  static constexpr std::size_t kTemplatesWalkedAtOnce = 1024;  // see publish_templates
  static constexpr std::size_t kBatch = 32;                    // datagrams per recvmmsg
  static constexpr std::size_t kMaxDatagram = 65536;           // any UDP payload fits

  // cfg_.limits with the template budget every decoder of this plugin shares (its workers' and its
  // TCP sessions'), so that the byte bounds hold across all of them.
  static collector::DecoderLimits shared_budget(collector::DecoderLimits l) {
    l.budget = std::make_shared<collector::TemplateBudget>(
        collector::TemplateBounds{l.max_template_bytes_per_exporter, l.max_template_bytes});
    return l;
  }

  const NetflowConfig cfg_;
  const collector::DecoderLimits limits_;
  const char* name_;
  const std::string owner_;  // "[plugin.netflow] ", before error messages
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<Worker>> workers_;
  MetricsHub& hub_;
  RegistryHandle& registry_;
  RecordTap* records_;          // null in unit tests and --check-config
  HeartbeatBoard* heartbeats_;  // for the workers' threads; null in unit tests
  ObservedMetrics observed_;
  ReceiveMetrics metrics_;
  std::optional<DecoderGauges> gauges_;  // netflow only
  std::mutex tracker_mu_;                // flows are shared: two exporters may report the same one
  FlowTracker tracker_;
  TcpSessions tcp_;  // worker 0 only
  RecordDump dump_;
  TemplateKeeper templates_;  // netflow only (an empty path otherwise)
  LogLimiter limiter_, refused_limiter_, overflow_limiter_, template_limiter_, tcp_limiter_,
      session_limiter_;                                  // thread-safe
  LogLimiter fold_limiter_{1, std::chrono::minutes(1)};  // exporters put under "other"
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<NetflowPlugin>(
      NetflowConfig::from(cfg, Wire::kNetflow, *ctx.registry.get()), ctx, name);
}
std::unique_ptr<Plugin> create_sflow(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<NetflowPlugin>(
      NetflowConfig::from(cfg, Wire::kSflow, *ctx.registry.get()), ctx, name);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{"netflow",
                               "NetFlow v1/v5/v9 and IPFIX collector (UDP, IPFIX over TCP)",
                               netflow_keys(), create, /*offers_records=*/true};
  return info;
}

const PluginInfo& sflow_plugin_info() {
  static const PluginInfo info{
      "sflow", "sFlow v5 collector: sampled packet headers (5-tuple, IPv6 flow label)",
      sflow_keys(), create_sflow, /*offers_records=*/true};
  return info;
}

}  // namespace flowd::netflow
