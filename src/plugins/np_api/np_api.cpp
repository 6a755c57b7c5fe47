// SPDX-License-Identifier: Apache-2.0
#include "plugins/np_api/np_api.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "flowd/log.hpp"
#include "flowd/heartbeat.hpp"
#include "flowd/stop_fd.hpp"
#include "plugins/np_api/pipe_line.hpp"

namespace flowd::np_api {
namespace {

constexpr KeySpec kKeys[] = {
    {"path", KeyType::kPath, "/var/run/flowd", "the named pipe (FIFO) transfer services write to",
     "NP_API_FILE"},
    {"mode", KeyType::kMode, "0666", "permissions of the pipe when flowd creates it"},
    {"group", KeyType::kString, "", "group owning the pipe (name or number); empty: flowd's group"},
    {"max_line_length",
     KeyType::kInt,
     "4096",
     "longer lines are rejected (reason too_long)",
     {},
     64,
     65536},
    {.name = "partial_timeout_ms",
     .type = KeyType::kDuration,
     .default_value = "1000",
     .help = "a line without its newline for this long is discarded (reason truncated)",
     .min = 10,
     .max = 600000,
     .unit = DurationUnit::kMilliseconds,
     .resolution = DurationUnit::kMilliseconds},
};

class NpApi final : public Plugin {
 public:
  NpApi(const Section& cfg, Context& ctx)
      : ctx_(ctx),
        path_(cfg.get("path")),
        mode_(static_cast<mode_t>(std::stoul(cfg.get("mode"), nullptr, 8))),
        group_(cfg.get("group")),
        max_line_(static_cast<std::size_t>(cfg.get_int("max_line_length"))),
        partial_timeout_(cfg.get_int("partial_timeout_ms")),
        log_(get_logger("plugin.np_api")) {
    auto& lines = prometheus::BuildCounter()
                      .Name("flowd_np_api_lines_total")
                      .Help("Lines read from the np_api named pipe, accepted or not")
                      .Register(ctx.metrics);
    lines_ = &lines.Add({});
    auto& rejected = prometheus::BuildCounter()
                         .Name("flowd_np_api_rejected_lines_total")
                         .Help("Lines from the np_api named pipe that were rejected, by reason")
                         .Register(ctx.metrics);
    for (std::size_t i = 0; i < kRejectReasonCount; ++i)
      rejected_[i] =
          &rejected.Add({{"reason", std::string(to_string(static_cast<RejectReason>(i)))}});
  }

  ~NpApi() override { close_fd(); }

  void start() override {
    namespace fs = std::filesystem;
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
      if (!S_ISFIFO(st.st_mode))
        throw std::runtime_error(
            path_ + " exists and is not a named pipe; remove it or set [plugin.np_api] path");
      log_->info("reusing the existing named pipe {}", path_);
    } else {
      auto parent = fs::path(path_).parent_path();
      std::error_code ec;
      if (!parent.empty() && !fs::exists(parent, ec)) fs::create_directories(parent, ec);
      // The mode must not be narrowed by our umask: writers run as other users.
      mode_t old = ::umask(0);
      int rc = ::mkfifo(path_.c_str(), mode_);
      int err = errno;
      ::umask(old);
      if (rc != 0) throw std::system_error(err, std::generic_category(), "mkfifo " + path_);
      created_ = true;
    }
    if (::chmod(path_.c_str(), mode_) != 0)
      log_->warn("cannot set mode {:04o} on {}: {}", mode_, path_, std::strerror(errno));
    if (!group_.empty()) {
      gid_t gid = 0;
      if (struct group* g = ::getgrnam(group_.c_str())) {
        gid = g->gr_gid;
      } else if (group_.find_first_not_of("0123456789") == std::string::npos) {
        gid = static_cast<gid_t>(std::stoul(group_));
      } else {
        throw std::runtime_error("[plugin.np_api] group: no group named '" + group_ + "'");
      }
      if (::chown(path_.c_str(), static_cast<uid_t>(-1), gid) != 0)
        throw std::system_error(errno, std::generic_category(), "chown " + path_);
    }
    // O_RDWR: we are a writer too, so the pipe never reports EOF and writers never get ENXIO/EPIPE.
    fd_ = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + path_);
    if (::fstat(fd_, &st) == 0) {
      dev_ = st.st_dev;
      ino_ = st.st_ino;
    }
    log_->info("listening on named pipe {} (mode {:04o})", path_, mode_);
  }

  void run(std::stop_token stop, Publisher& out) override {
    StopFd stopfd(stop);
    LineAssembler lines(max_line_);
    std::array<char, 65536> buf;
    std::chrono::steady_clock::time_point partial_since{};
    while (!stop.stop_requested()) {
      int timeout = -1;
      if (lines.has_partial()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        partial_since + partial_timeout_ - std::chrono::steady_clock::now())
                        .count();
        timeout = static_cast<int>(std::max<long long>(left, 0));
      }
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stopfd.fd(), POLLIN, 0}};
      int n;
      {
        WaitingScope waiting;
        n = ::poll(fds, 2, timeout);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(), "poll on " + path_);
      }
      if (fds[1].revents) break;
      if (n == 0) {
        bool overflowed = lines.overflowed();
        if (lines.drop_partial()) {
          lines_->Increment();
          count_reject(overflowed ? RejectReason::kTooLong : RejectReason::kTruncated, "",
                       "no newline within the partial-line timeout");
        }
        continue;
      }
      auto registry = ctx_.registry.get();
      auto now = Clock::now();
      while (true) {
        ssize_t got = ::read(fd_, buf.data(), buf.size());
        if (got < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) break;
          throw std::system_error(errno, std::generic_category(), "read " + path_);
        }
        if (got == 0) break;
        flows_.clear();
        lines.feed(std::string_view(buf.data(), static_cast<std::size_t>(got)),
                   [&](std::string_view line, bool overflowed) {
                     handle_line(line, overflowed, *registry, now);
                   });
        // All the lines of one read() go to the bus in one hand-over.
        out.publish(flows_);
        if (static_cast<std::size_t>(got) < buf.size()) break;
      }
      // The timeout counts from the last byte received, so a slow writer is not cut off.
      partial_since = lines.has_partial() ? std::chrono::steady_clock::now()
                                          : std::chrono::steady_clock::time_point{};
    }
  }

  void stop() override {
    close_fd();
    // Remove the pipe only if it is still the one we opened (not one a new instance made).
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0 && S_ISFIFO(st.st_mode) && st.st_dev == dev_ &&
        st.st_ino == ino_) {
      ::unlink(path_.c_str());
      log_->info("removed named pipe {}", path_);
    }
  }

 private:
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
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
        log_->debug("{}", line);
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
    rejected_[static_cast<std::size_t>(reason)]->Increment();
    std::uint64_t held = 0;
    if (!limiter_.allow(held)) return;
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
  std::string group_;
  std::size_t max_line_;
  std::chrono::milliseconds partial_timeout_;
  std::shared_ptr<spdlog::logger> log_;
  int fd_ = -1;
  bool created_ = false;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  prometheus::Counter* lines_;
  std::array<prometheus::Counter*, kRejectReasonCount> rejected_{};
  LogLimiter limiter_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* /*name*/) {
  return std::make_unique<NpApi>(cfg, ctx);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "np_api", "named pipe: one 'state prot src sport dst dport exp act' line per flow", kKeys,
      create};
  return info;
}

}  // namespace flowd::np_api
