// SPDX-License-Identifier: Apache-2.0
#include "app/status_cli.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <algorithm>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/counted.hpp"
#include "common/net/endpoint.hpp"
#include "common/unique_fd.hpp"
#include "flowd/flow_id.hpp"
#include "plugins/api/api_config.hpp"

namespace flowd {
namespace {

constexpr std::uint16_t kDefaultApiPort = 8787;
constexpr const char* kDefaultSocket = "/run/flowd.sock";

struct Target {
  std::string socket;  // unix socket, or
  net::Endpoint tcp;   // host:port
  std::string describe() const {
    return socket.empty() ? "http://" + tcp.to_string() : "the unix socket " + socket;
  }
};

// Where the API listens: the options, else [plugin.api] of the configuration (its socket first),
// read as flowd reads it (api::ApiConfig). When the file runs no API, says which of the two it
// lacks: `api` in [flowd] plugins (a [plugin.api] section alone enables nothing), or a listener.
std::optional<Target> find_target(const StatusOptions& opts, const ComponentTable& components,
                                  std::string& error) {
  Target t;
  if (!opts.socket.empty()) {
    t.socket = opts.socket;
    return t;
  }
  if (!opts.address.empty()) {
    auto ep = net::parse_endpoint(opts.address, kDefaultApiPort);
    if (!ep) {
      error = "--address: '" + opts.address + "' is not host[:port]";
      return std::nullopt;
    }
    t.tcp = *ep;
    return t;
  }
  RawConfig raw;
  Config c;
  try {
    raw = read_config_file(opts.config_path, components);
    c = validate_config(raw, components);
  } catch (const ConfigError& e) {
    error = e.what();
    return std::nullopt;
  }
  const auto api = std::find_if(c.plugins.begin(), c.plugins.end(),
                                [](const PluginConfig& p) { return p.info->name == "api"; });
  if (api == c.plugins.end()) {
    std::vector<std::string_view> listed;
    for (const auto& p : c.plugins) listed.push_back(p.info->name);
    const bool has_section =
        std::any_of(raw.sections.begin(), raw.sections.end(),
                    [](const RawSection& s) { return s.name == "plugin.api"; });
    const std::string key = c.legacy ? "PLUGIN" : "[flowd] plugins";
    const std::string enable = fmt::format(
        "add api to {} and reload flowd (SIGHUP), or give --socket PATH or --address HOST:PORT",
        key);
    if (has_section)
      error = fmt::format(
          "{} has a [plugin.api] section, but 'api' is not in its {} ({}): a flowd running this "
          "file serves no HTTP API ({})",
          c.path, key, fmt::join(listed, ", "), enable);
    else
      error = fmt::format(
          "{} does not list 'api' in its {} ({}), nor has it a [plugin.api] section: a flowd "
          "running this file serves no HTTP API ({}; the API's socket is {} unless [plugin.api] "
          "says otherwise)",
          c.path, key, fmt::join(listed, ", "), enable, kDefaultSocket);
    return std::nullopt;
  }
  try {
    const auto a = api::ApiConfig::from(api->section);
    if (!a.socket.empty()) {
      t.socket = a.socket;
      return t;
    }
    t.tcp = *a.listen;  // from() refuses a section with neither
    if (t.tcp.host == "0.0.0.0") t.tcp.host = "127.0.0.1";
    if (t.tcp.host == "::") t.tcp.host = "::1";
    return t;
  } catch (const ConfigError& e) {
    // As flowd would refuse to start with it: "[plugin.api] socket and listen are both empty..."
    error = fmt::format("{}: {}", c.path, e.what());
    return std::nullopt;
  }
}

// Why a connection to `t` fails, by connecting once by hand (httplib does not say): 0 when it
// succeeds (or the address does not resolve: httplib's error says that), else the errno
// (ECONNREFUSED, ENOENT, EACCES, ENETUNREACH, ETIMEDOUT after 2 s...).
int why_unreachable(const Target& t) {
  if (!t.socket.empty()) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (t.socket.size() >= sizeof a.sun_path) return ENAMETOOLONG;
    std::memcpy(a.sun_path, t.socket.c_str(), t.socket.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return 0;
    const int err = errno;
    // connect() says "refused" for a path that is there but no socket (a regular file, often the
    // configuration file given to --socket by mistake).
    struct stat st {};
    if (err == ECONNREFUSED && ::stat(t.socket.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
      return ENOTSOCK;
    return err;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(t.tcp.port);
  if (::getaddrinfo(t.tcp.host.c_str(), port.c_str(), &hints, &res) != 0 || !res) return 0;
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(res, &::freeaddrinfo);
  UniqueFd fd(::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  if (::connect(fd.get(), res->ai_addr, res->ai_addrlen) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd p{fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, 2000) <= 0) return ETIMEDOUT;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

// The sentence for a connection that failed with `err`: flowd is not running only where nothing
// listens (no socket file, or refused); a socket it may not open or an address it cannot reach
// from here says nothing of whether flowd runs.
std::string connection_failure(const Target& t, int err) {
  const std::string why = err ? std::strerror(err) : "";
  switch (err) {
    case EACCES:
    case EPERM:
      return fmt::format(
          "{} may not be opened by this user ({}): flowd may well be running; run this as root or "
          "as a user who may write the socket (its [plugin.api] mode and group), or give "
          "--address HOST:PORT of its [plugin.api] listen",
          t.describe(), why);
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ETIMEDOUT:
      return fmt::format(
          "{} cannot be reached from here ({}): whether flowd runs is not known; check its "
          "[plugin.api] listen address (or --address) and the route to it",
          t.describe(), why);
    case ENOTSOCK:
      return fmt::format(
          "{} is not a socket (a file of another kind is there): give --socket the path of "
          "flowd's [plugin.api] socket, or -c the configuration file",
          t.describe());
    default:
      return fmt::format("flowd is not running: nothing answers on {}{}", t.describe(),
                         why.empty() ? "" : " (" + why + ")");
  }
}

std::optional<nlohmann::json> get(const Target& t, const std::string& path, std::string& error) {
  std::unique_ptr<httplib::Client> cli;
  if (!t.socket.empty()) {
    cli = std::make_unique<httplib::Client>(t.socket);
    cli->set_address_family(AF_UNIX);
  } else {
    cli = std::make_unique<httplib::Client>(t.tcp.host, t.tcp.port);
  }
  cli->set_connection_timeout(std::chrono::seconds(2));
  cli->set_read_timeout(std::chrono::seconds(10));
  auto res = cli->Get(path);
  if (!res) {
    if (res.error() == httplib::Error::Connection ||
        res.error() == httplib::Error::ConnectionTimeout)
      error = connection_failure(t, why_unreachable(t));
    else
      error = fmt::format("flowd did not answer on {}: {}", t.describe(),
                          httplib::to_string(res.error()));
    return std::nullopt;
  }
  auto body = nlohmann::json::parse(res->body, nullptr, false);
  // GET /v1/flows: {"flows": [{"origin": ..., "src_ip": ..., "src_port": ...}, ...], "count": N,
  // "total": N}, as status_json.cpp writes it.
  auto flows_shape = [&] {
    const auto flows = body.find("flows");
    if (flows == body.end() || !flows->is_array() || !body.contains("count") ||
        !body["count"].is_number_unsigned() || !body.contains("total") ||
        !body["total"].is_number_unsigned())
      return false;
    return std::all_of(flows->begin(), flows->end(), [](const nlohmann::json& f) {
      return f.is_object() && f.contains("origin") && f["origin"].is_string() &&
             f.contains("src_ip") && f["src_ip"].is_string() && f.contains("src_port") &&
             f["src_port"].is_number_unsigned();
    });
  };
  // flowd's answers are JSON objects: GET /v1/status has "version" and "components", GET
  // /v1/flows has "flows", an error has "error" and "reason". Anything else comes from another
  // server on that socket or port (a plain web server's 404 page): say so, not what it said.
  const bool ours =
      body.is_object() &&
      (path.starts_with("/v1/status") ? body.contains("version") && body.contains("components")
                                      : flows_shape());
  const bool our_error = body.is_object() && body.contains("error") && body.contains("reason");
  if (res->status == 200 && ours) return body;
  if (our_error) {
    error = fmt::format(
        "flowd on {} answered {}: {}", t.describe(), res->status,
        body["error"].is_string() ? body["error"].get<std::string>() : body["error"].dump());
    return std::nullopt;
  }
  error = fmt::format(
      "{} is not flowd's API: GET {} answered HTTP {}{} without flowd's JSON; something else "
      "listens there (check [plugin.api] socket and listen, or --socket/--address)",
      t.describe(), path, res->status,
      res->reason.empty() ? std::string() : " " + res->reason.substr(0, 60));
  return std::nullopt;
}

std::string duration(std::int64_t s) {
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m {}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h {}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d {}h", s / 86400, (s % 86400) / 3600);
}

template <class T>
T value(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

void print_status(const nlohmann::json& s) {
  using nlohmann::json;
  std::cout << fmt::format(
      "flowd {} running since {} (up {})\n", value<std::string>(s, "version", "?"),
      value<std::string>(s, "started", "?"), duration(value<std::int64_t>(s, "uptime_seconds", 0)));
  std::vector<std::string> plugins, modes;
  std::vector<const json*> backends;
  const json components = value<json>(s, "components", json::array());
  for (const auto& c : components)
    if (value<std::string>(c, "kind", "") == "plugin") {
      plugins.push_back(value<std::string>(c, "name", "?"));
      if (auto mode = value<std::string>(c, "mode", ""); !mode.empty())
        modes.push_back(fmt::format("  {:<14} {}\n", plugins.back(), mode));
    } else {
      backends.push_back(&c);
    }
  std::cout << fmt::format("plugins:    {}\n",
                           plugins.empty() ? "none" : fmt::format("{}", fmt::join(plugins, ", ")));
  for (const auto& m : modes) std::cout << m;
  std::cout << "backends:   " << (backends.empty() ? "none\n" : "\n");
  for (const auto* b : backends)
    std::cout << fmt::format(
        "  {:<14} queue {:>6} / {:<8} dropped {}\n", value<std::string>(*b, "name", "?"),
        value<std::uint64_t>(*b, "queue_depth", 0), value<std::uint64_t>(*b, "queue_capacity", 0),
        value<std::uint64_t>(*b, "dropped", 0));
  auto ev = value<json>(s, "events", json::object());
  std::cout << fmt::format("events:     {} published, {} dropped at full queues\n",
                           value<std::uint64_t>(ev, "published", 0),
                           value<std::uint64_t>(ev, "dropped", 0));
  auto af = value<json>(s, "active_flows", json::object());
  std::cout << fmt::format(
      "flows:      {} active (table of {}, {} evicted)\n", value<std::uint64_t>(af, "count", 0),
      value<std::uint64_t>(af, "capacity", 0), value<std::uint64_t>(af, "overflow", 0));
  auto reg = value<json>(s, "registry", json::object());
  // The source names the registry's own modification time already. The age counts from when the
  // source last fetched or confirmed it, and for the built-in snapshot or a cached copy from its
  // own time (not from flowd's start: "loaded" misled, try15h).
  std::cout << fmt::format("registry:   {} experiments from {}, current as of {} ago\n",
                           value<std::uint64_t>(reg, "experiments", 0),
                           value<std::string>(reg, "source", "?"),
                           duration(value<std::int64_t>(reg, "age_seconds", 0)));
  auto marker = value<json>(s, "marker", json::object());
  if (!value<bool>(marker, "running", false)) {
    std::cout << "marker:     not running\n";
  } else {
    std::cout << fmt::format(
        "marker:     {} in its map\n",
        counted(value<std::uint64_t>(marker, "map_entries", 0), "flow", "flows"));
    for (const auto& i : value<json>(marker, "interfaces", json::array()))
      std::cout << fmt::format("  {:<14} {}\n", value<std::string>(i, "name", "?"),
                               value<bool>(i, "attached", false) ? "attached" : "NOT attached");
  }
}

std::string endpoint_text(const std::string& ip, unsigned port) {
  return ip.find(':') != std::string::npos ? fmt::format("[{}]:{}", ip, port)
                                           : fmt::format("{}:{}", ip, port);
}

void print_flows(const nlohmann::json& body) {
  using nlohmann::json;
  auto flows = value<json>(body, "flows", json::array());
  std::cout << fmt::format("{:<9} {:<8} {:<5} {:<42} {:<42} {:<36} {:<25} {}\n", "ORIGIN", "PLUGIN",
                           "PROTO", "SOURCE", "DESTINATION", "TAG (EXP/ACT)", "START", "MARKED");
  for (const auto& f : flows) {
    auto tag = fmt::format("{}/{} ({}/{})", value<std::string>(f, "experiment_name", "?"),
                           value<std::string>(f, "activity_name", "?"),
                           value<unsigned>(f, "experiment", 0), value<unsigned>(f, "activity", 0));
    auto marked = f.contains("marked") && f["marked"].is_boolean()
                      ? (f["marked"].get<bool>() ? "yes" : "no")
                      : "-";
    std::cout << fmt::format(
        "{:<9} {:<8} {:<5} {:<42} {:<42} {:<36} {:<25} {}\n", value<std::string>(f, "origin", "?"),
        value<std::string>(f, "plugin", "?"), value<std::string>(f, "protocol", "?"),
        endpoint_text(value<std::string>(f, "src_ip", "?"), value<unsigned>(f, "src_port", 0)),
        endpoint_text(value<std::string>(f, "dst_ip", "?"), value<unsigned>(f, "dst_port", 0)), tag,
        value<std::string>(f, "start", "?"), marked);
  }
  auto count = value<std::uint64_t>(body, "count", 0),
       total = value<std::uint64_t>(body, "total", 0);
  if (total > count)
    std::cout << fmt::format("({} of {} active flows shown; --limit N for more)\n", count, total);
  else
    std::cout << fmt::format("({} active flow{})\n", total, total == 1 ? "" : "s");
}

int fetch_and_print(const StatusOptions& opts, const ComponentTable& components,
                    const std::string& path, void (*print)(const nlohmann::json&)) {
  std::string error;
  auto target = find_target(opts, components, error);
  if (!target) {
    std::cerr << "flowd: " << error << "\n";
    return 2;
  }
  auto body = get(*target, path, error);
  if (!body) {
    // A sentence of its own, naming flowd ("flowd is not running: ..."): no "flowd: " before it.
    std::cerr << error << "\n";
    return 1;
  }
  if (opts.json)
    std::cout << body->dump(2) << "\n";
  else
    print(*body);
  return 0;
}

}  // namespace

std::string check_api_option(const std::string& value, const std::string& what) {
  if (value.empty()) return fmt::format("needs a value, {}", what);
  if (value.front() == '-')
    return fmt::format("needs a value, {}; got the option {} instead", what, value);
  if (what != "PATH" && !net::parse_endpoint(value, kDefaultApiPort))
    return fmt::format("'{}' is not {}", value, what);
  return "";
}

std::string check_count(const std::string& value, std::string_view what, std::size_t max) {
  std::size_t n = 0;
  const bool digits = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (!digits || ec != std::errc() || p != value.data() + value.size() || n < 1 || n > max)
    return fmt::format("'{}' is not a whole number from 1 to {} ({})", value, max, what);
  return "";
}

std::string check_limit(const std::string& value) {
  return check_count(value, "a count of flows", kMaxLimit);
}

int status_command(const StatusOptions& opts, const ComponentTable& components) {
  return fetch_and_print(opts, components, "/v1/status", print_status);
}

int flows_command(const StatusOptions& opts, const ComponentTable& components) {
  return fetch_and_print(opts, components, fmt::format("/v1/flows?limit={}", opts.limit),
                         print_flows);
}

}  // namespace flowd
