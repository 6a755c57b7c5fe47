// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/np_api.hpp"

#include <fcntl.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <optional>
#include <system_error>

#include "flowd/heartbeat.hpp"
#include "flowd/log.hpp"
#include "flowd/reason_counters.hpp"
#include "flowd/reload_shelf.hpp"
#include "flowd/stop_fd.hpp"
#include "plugins/np_api/named_pipe.hpp"
#include "plugins/np_api/np_api_config.hpp"
#include "plugins/np_api/pipe_line.hpp"
#include "plugins/scanner/connection_watch.hpp"

namespace flowd::np_api {
namespace {

class NpApi final : public Plugin {
 public:
  NpApi(const NpApiConfig& cfg, Context& ctx)
      : ctx_(ctx),
        path_(cfg.path),
        mode_(cfg.mode),
        group_(cfg.group),
        max_line_(cfg.max_line_length),
        partial_timeout_(cfg.partial_timeout),
        log_(get_logger("plugin.np_api")),
        rejected_(ctx.metrics, "flowd_np_api_rejected_lines_total",
                  "Lines from the np_api named pipe that were rejected, by reason"),
        watch_(plugin_info().name.data(), cfg.check_interval, ctx.metrics, log_) {
    auto& lines = prometheus::BuildCounter()
                      .Name("flowd_np_api_lines_total")
                      .Help("Lines read from the np_api named pipe, accepted or not")
                      .Register(ctx.metrics);
    lines_ = &lines.Add({});
  }

  void start() override {
    watch_.take_shelved(ctx_.shelf);  // what a predecessor's checks found (inherit() in run())
    PipeSpec spec{path_, mode_, group_};
    std::unique_ptr<ShelfItem> item;
    if (ctx_.shelf) {
      // A reload restarted np_api: the previous instance left its pipe open
      // (flowd/reload_shelf.hpp).
      if ((item = ctx_.shelf->take(shelf_key()))) {
        auto* parked = dynamic_cast<ParkedPipe*>(item.get());
        if (parked && path_names(path_, parked->dev, parked->ino)) {
          fd_ = std::move(parked->fd);
          dev_ = parked->dev;
          ino_ = parked->ino;
          carried_partial_ = std::move(parked->partial);
          parked->path.clear();  // ours now: its destructor must not remove the pipe
          apply_mode_and_group(fd_.get(), spec, *log_);
          log_->info("listening on named pipe {} (mode {:04o}), kept open across the reload", path_,
                     mode_);
          return;
        }
      }
    }
    OpenPipe pipe;
    try {
      pipe = open_named_pipe(spec, *log_);
    } catch (const std::exception& e) {
      // The pipe was taken from its path (a user who can write the directory renamed it and put
      // something else there): a reload must not end flowd over it. Keep reading the pipe still
      // open; the directory watch makes a new one once the path is free.
      auto* parked = dynamic_cast<ParkedPipe*>(item.get());
      if (!parked || !parked->fd) throw;
      fd_ = std::move(parked->fd);
      dev_ = parked->dev;
      ino_ = parked->ino;
      carried_partial_ = std::move(parked->partial);
      parked->path.clear();
      log_->error("{}; still reading the pipe flowd had open, which writers can no longer reach",
                  e.what());
      return;
    }  // a parked pipe no longer at the path is closed here
    fd_ = std::move(pipe.fd);
    dev_ = pipe.dev;
    ino_ = pipe.ino;
    log_->info("listening on named pipe {} (mode {:04o})", path_, mode_);
  }

  void run(std::stop_token stop, Publisher& out) override {
    StopFd stopfd(stop);
    if (!dir_watch_) dir_watch_.emplace(path_, *log_);
    PipeDirWatch& watch = *dir_watch_;
    // A reload restarted np_api: the TCP flows its predecessor started are checked on.
    if (std::size_t n = watch_.inherit(ctx_.status))
      log_->info(
          "checking {} TCP flows started before this plugin (a reload, or a restart's flow "
          "journal)",
          n);
    if (!path_names(path_, dev_, ino_)) make_pipe_again();  // start() kept a pipe off its path
    LineAssembler lines(max_line_);
    lines.feed(carried_partial_,
               [](std::string_view, bool) {});  // no newline in it: it stays partial
    carried_partial_.clear();
    std::chrono::steady_clock::time_point partial_since =
        lines.has_partial() ? std::chrono::steady_clock::now()
                            : std::chrono::steady_clock::time_point{};
    while (!stop.stop_requested()) {
      int timeout = -1;
      if (lines.has_partial()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        partial_since + partial_timeout_ - std::chrono::steady_clock::now())
                        .count();
        timeout = static_cast<int>(std::max<long long>(left, 0));
      }
      // The directory watch and the check's timer only when there are (the timer last).
      pollfd fds[4] = {{fd_.get(), POLLIN, 0}, {stopfd.fd(), POLLIN, 0}, {}, {}};
      nfds_t count = 2;
      if (watch.fd() >= 0) fds[count++] = {watch.fd(), POLLIN, 0};
      if (watch_.fd() >= 0) fds[count++] = {watch_.fd(), POLLIN, 0};
      int n;
      {
        WaitingScope waiting;
        n = ::poll(fds, count, timeout);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "poll on " + path_);
      }
      if (fds[1].revents) break;
      const bool check_due = watch_.fd() >= 0 && fds[count - 1].revents;
      if (watch.fd() >= 0 && fds[2].revents && watch.concerns_pipe() &&
          !path_names(path_, dev_, ino_)) {
        read_available(lines, out, kReadBufferBytes);
        make_pipe_again();
        if (fds[0].revents == 0) continue;
      }
      if (n == 0) {
        bool overflowed = lines.overflowed();
        if (lines.drop_partial()) {
          lines_->Increment();
          count_reject(overflowed ? RejectReason::kTooLong : RejectReason::kTruncated, "",
                       "no newline within the partial-line timeout");
        }
        continue;
      }
      if (read_available(lines, out, kReadBufferBytes) > 0)
        // The timeout counts from the last byte received, so a slow writer is not cut off.
        partial_since = lines.has_partial() ? std::chrono::steady_clock::now()
                                            : std::chrono::steady_clock::time_point{};
      // After the lines the pipe held: a tool's own end waiting there is the one that ends its
      // flow. (A branch above that went on to the next poll leaves the timer readable.)
      if (check_due) watch_.on_timer(out);
    }
    // Lines already in the pipe were written before the stop: read them rather than throw them away
    // (issue 13). Bounded, because flowd holding the pipe open means a busy writer never runs dry.
    int capacity = ::fcntl(fd_.get(), F_GETPIPE_SZ);
    std::size_t drained =
        read_available(lines, out, 2 * static_cast<std::size_t>(std::max(capacity, 65536)));
    if (drained) log_->info("read {} byte(s) left in {} at stop", drained, path_);
    if (lines.overflowed()) {
      lines.drop_partial();
      lines_->Increment();
      count_reject(RejectReason::kTooLong, "", "partial line at stop");
    }
    carried_partial_ = lines.take_partial();  // for the successor, if a reload brings one
  }

  void stop() override {
    watch_.shelve(ctx_.shelf);
    if (!fd_) return;
    auto parked = std::make_unique<ParkedPipe>(std::move(fd_), path_, dev_, ino_,
                                               std::move(carried_partial_), log_);
    // The runtime destroys what no successor takes (the daemon stops, or np_api left the
    // configuration); without a shelf (unit tests) it is destroyed, i.e. removed, right here.
    if (ctx_.shelf) ctx_.shelf->put(shelf_key(), std::move(parked));
  }

 private:
  static constexpr std::size_t kReadBufferBytes = 65536;

  // The pipe between an instance stopped by a reload and its successor. Destroyed untaken, it
  // closes the pipe and removes it if the path still names it (not one a new instance made).
  struct ParkedPipe final : ShelfItem {
    ParkedPipe(UniqueFd f, std::string p, dev_t d, ino_t i, std::string partial_line,
               std::shared_ptr<spdlog::logger> l)
        : fd(std::move(f)),
          path(std::move(p)),
          dev(d),
          ino(i),
          partial(std::move(partial_line)),
          log(std::move(l)) {}
    ~ParkedPipe() override {
      if (path.empty()) return;
      if (!partial.empty())
        log->warn("{}: dropped a partial line of {} byte(s) without its newline at stop", path,
                  partial.size());
      fd.reset();
      if (path_names(path, dev, ino)) {
        ::unlink(path.c_str());
        log->info("removed named pipe {}", path);
      }
    }
    UniqueFd fd;
    std::string path;
    dev_t dev;
    ino_t ino;
    std::string partial;
    std::shared_ptr<spdlog::logger> log;
  };

  std::string shelf_key() const { return "np_api:" + path_; }

  // The pipe was removed, renamed or replaced while flowd ran: writers can no longer reach the one
  // flowd holds. Make a new one; if something else now sits at the path, keep reading the old one
  // and try again at the next change in the directory.
  void make_pipe_again() {
    try {
      auto pipe = open_named_pipe(PipeSpec{path_, mode_, group_}, *log_);
      fd_ = std::move(pipe.fd);
      dev_ = pipe.dev;
      ino_ = pipe.ino;
      log_->warn("named pipe {} was removed or replaced while flowd ran; made a new one", path_);
    } catch (const std::exception& e) {
      limited_warn(*log_, pipe_limiter_,
                   "named pipe {} was removed or replaced while flowd ran and cannot be made "
                   "again: {}; writers cannot reach flowd until it can",
                   path_, e.what());
    }
  }

  // Reads until the pipe is empty or `limit` bytes were read; returns the bytes read.
  std::size_t read_available(LineAssembler& lines, Publisher& out, std::size_t limit) {
    auto registry = ctx_.registry.get();
    auto now = Clock::now();
    std::size_t total = 0;
    while (total < limit) {
      ssize_t got = ::read(fd_.get(), buf_.data(), buf_.size());
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        throw std::system_error(errno, std::generic_category(), "read " + path_);
      }
      if (got == 0) break;
      total += static_cast<std::size_t>(got);
      flows_.clear();
      lines.feed(std::string_view(buf_.data(), static_cast<std::size_t>(got)),
                 [&](std::string_view line, bool overflowed) {
                   handle_line(line, overflowed, *registry, now);
                 });
      // All the lines of one read() go to the bus in one hand-over; the TCP flows are followed for
      // the check of their connections.
      watch_.publish(out, flows_);
      if (static_cast<std::size_t>(got) < buf_.size()) break;
    }
    return total;
  }

  void handle_line(std::string_view line, bool overflowed, const ScitagsRegistry& registry,
                   TimePoint now) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    if (line.empty() && !overflowed) return;
    lines_->Increment();
    LineResult res;
    if (overflowed) {
      res.reason = RejectReason::kTooLong;
      res.detail = fmt::format("longer than {} bytes", max_line_);
    } else {
      res = parse_pipe_line(line, registry, now);
      if (res.ok) {
        flows_.push_back(std::move(res.flow));
        return;
      }
    }
    // A partial line left by a writer that went away, then a whole line from the next writer.
    if (auto at = find_embedded_line(line, registry); at != std::string_view::npos) {
      count_reject(overflowed ? RejectReason::kTooLong : RejectReason::kTruncated,
                   line.substr(0, at),
                   overflowed ? res.detail : "partial line joined to the next one");
      lines_->Increment();
      auto good = parse_pipe_line(line.substr(at), registry, now);
      flows_.push_back(std::move(good.flow));
      return;
    }
    count_reject(res.reason, line, res.detail);
  }

  void count_reject(RejectReason reason, std::string_view line, const std::string& detail) {
    rejected_.add(reason);
    std::uint64_t held = 0;
    if (!limiter_.allow(held)) return;  // the escaping below is done only for a line that is logged
    constexpr std::size_t kShow = 120;
    std::string shown;
    for (char c : line.substr(0, kShow)) {
      auto u = static_cast<unsigned char>(c);
      shown += (u >= 0x20 && u < 0x7f) ? std::string(1, c) : fmt::format("\\x{:02x}", u);
    }
    log_->warn("{}: rejected line ({}: {}): \"{}\"{}{}", path_, to_string(reason), detail, shown,
               line.size() > kShow ? "..." : "",
               held ? fmt::format(" ({} more rejected lines not logged)", held) : "");
  }

  Context& ctx_;
  std::vector<FlowID> flows_;  // what one read() produced, for the bus
  std::string path_;
  mode_t mode_;
  std::optional<gid_t> group_;
  std::size_t max_line_;
  std::chrono::milliseconds partial_timeout_;
  std::shared_ptr<spdlog::logger> log_;
  ReasonCounters<RejectReason, kRejectReasonCount> rejected_;
  UniqueFd fd_;
  std::string carried_partial_;  // a line without its newline yet, from the previous instance or
                                 // for the next
  std::array<char, kReadBufferBytes> buf_{};
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  prometheus::Counter* lines_;
  LogLimiter limiter_;
  LogLimiter pipe_limiter_;
  std::optional<PipeDirWatch> dir_watch_;  // made in run() (kept by a later run())
  scanner::ConnectionWatch watch_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* /*name*/) {
  return std::make_unique<NpApi>(NpApiConfig::from(cfg), ctx);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "np_api",
      "named pipe: one 'state prot src sport dst dport exp act' line per flow",
      config_keys(),
      create,
      /*offers_records=*/false,
      /*explicit_reports=*/true};
  return info;
}

}  // namespace flowd::np_api
