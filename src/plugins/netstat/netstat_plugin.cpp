// SPDX-License-Identifier: Apache-2.0
#include "plugins/netstat/netstat_plugin.hpp"

#include <fcntl.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "flowd/log.hpp"
#include "plugins/netstat/proc_net_tcp.hpp"
#include "plugins/scanner/scanner_keys.hpp"
#include "plugins/scanner/scanner_plugin.hpp"

namespace flowd::netstat {
namespace {

constexpr std::array<KeySpec, 1> kOwnKeys = {{
    {"proc_dir", KeyType::kPath, "/proc/net", "where tcp and tcp6 are read from"},
}};
constexpr auto kKeys =
    scanner::join(scanner::tag_keys("NETSTAT_EXPERIMENT", "NETSTAT_ACTIVITY"),
                  scanner::scan_keys("NETSTAT_INTERNAL_NETWORKS", "NETSTAT_TIMEOUT"), kOwnKeys);

class NetstatPlugin final : public scanner::ScannerPlugin {
 public:
  NetstatPlugin(const Section& cfg, Context& ctx, const char* name)
      : ScannerPlugin(name, ctx,
                      scanner::retagging(scanner::scanner_options(cfg, "plugin.netstat")),
                      scanner::port_rule_tagger(cfg, *ctx.registry.get(), "plugin.netstat")),
        dir_(cfg.get("proc_dir")) {
    auto& bad = prometheus::BuildCounter()
                    .Name("flowd_netstat_bad_lines_total")
                    .Help("Lines of /proc/net/tcp{,6} that could not be parsed, by reason")
                    .Register(ctx.metrics);
    for (std::size_t i = 1; i < kProcLineErrorCount; ++i)
      bad_[i] = &bad.Add({{"reason", std::string(to_string(static_cast<ProcLineError>(i)))}});
  }

  void start() override {
    if (::access((dir_ + "/tcp").c_str(), R_OK) != 0)
      throw std::runtime_error("[plugin.netstat] cannot read " + dir_ +
                               "/tcp: " + std::strerror(errno));
  }

 protected:
  bool scan(const scanner::ConnectionVisitor& visit, std::string& error) override {
    if (!read_file(dir_ + "/tcp", visit, error)) return false;
    // Hosts without IPv6 have no tcp6: that is no error.
    if (::access((dir_ + "/tcp6").c_str(), F_OK) == 0)
      return read_file(dir_ + "/tcp6", visit, error);
    return true;
  }

 private:
  bool read_file(const std::string& path, const scanner::ConnectionVisitor& visit,
                 std::string& error) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = path + ": " + std::strerror(errno);
      return false;
    }
    std::string pending;
    std::array<char, 65536> buf;
    bool header = true;
    scanner::Connection c;
    while (true) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = path + ": " + std::strerror(errno);
        ::close(fd);
        return false;
      }
      if (n == 0) break;
      pending.append(buf.data(), static_cast<std::size_t>(n));
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (header) {
          header = false;
          continue;
        }
        line_(path, line, c, visit);
      }
      pending.erase(0, start);
    }
    if (!pending.empty() && !header) line_(path, pending, c, visit);
    ::close(fd);
    return true;
  }

  void line_(const std::string& path, std::string_view line, scanner::Connection& c,
             const scanner::ConnectionVisitor& visit) {
    auto err = parse_proc_net_tcp_line(line, c);
    if (err == ProcLineError::kNone) {
      visit(c);
      return;
    }
    bad_[static_cast<std::size_t>(err)]->Increment();
    limited_warn(*log_, limiter_, "{}: cannot parse line ({}): '{}'", path, to_string(err),
                 line.substr(0, 200));
  }

  std::string dir_;
  std::array<prometheus::Counter*, kProcLineErrorCount> bad_{};
  LogLimiter limiter_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* name) {
  return std::make_unique<NetstatPlugin>(cfg, ctx, name);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{"netstat",
                               "TCP connections from /proc/net/tcp and tcp6: start and end events",
                               kKeys, create};
  return info;
}

}  // namespace flowd::netstat
