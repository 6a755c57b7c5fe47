// SPDX-License-Identifier: Apache-2.0
#include "plugins/api/api_plugin.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <nlohmann/json.hpp>

#include "flowd/daemon_status.hpp"
#include "flowd/log.hpp"
#include "flowd/reason_counters.hpp"
#include "plugins/api/api_config.hpp"
#include "plugins/api/flow_request.hpp"
#include "plugins/api/http_server.hpp"
#include "plugins/api/listeners.hpp"
#include "plugins/api/status_json.hpp"
#include "plugins/scanner/connection_watch.hpp"

namespace flowd::api {
namespace {

// flowd_api_requests_total{endpoint, code}: both label sets closed.
enum class Endpoint : std::uint8_t { kFlowsPost, kFlowsGet, kStatus, kOther };
constexpr std::array<std::string_view, 4> kEndpointNames = {"flows_post", "flows_get", "status",
                                                            "other"};
constexpr std::array<std::string_view, 5> kCodeClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};

constexpr std::size_t kDefaultListed = 1000;

Endpoint endpoint_of(const httplib::Request& req) {
  if (req.path == "/v1/flows")
    return req.method == "POST"  ? Endpoint::kFlowsPost
           : req.method == "GET" ? Endpoint::kFlowsGet
                                 : Endpoint::kOther;
  if (req.path == "/v1/status" && req.method == "GET") return Endpoint::kStatus;
  return Endpoint::kOther;
}

// The methods a known path takes (its Allow header, RFC 9110 §10.2.1), or nullptr for a path the
// API does not have. HEAD is GET without the body (httplib answers it from the GET route).
const char* allowed_methods(const std::string& path) {
  if (path == "/v1/flows") return "GET, HEAD, POST";
  if (path == "/v1/status") return "GET, HEAD";
  return nullptr;
}

std::string error_text(const httplib::Request& req, int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 404:
      return fmt::format(
          "no endpoint {}: the API has POST /v1/flows, GET /v1/flows and GET "
          "/v1/status",
          req.path.substr(0, 100));
    case 405:
      return fmt::format("{} is not allowed on {}", req.method.substr(0, 20),
                         req.path.substr(0, 100));
    case 413:
      return "request too large";
    default:
      return fmt::format("HTTP error {}", status);
  }
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

void send_error(httplib::Response& res, int status, std::string_view reason, std::string detail) {
  send_json(res, status, {{"error", std::move(detail)}, {"reason", reason}});
}

class ApiPlugin final : public Plugin {
 public:
  ApiPlugin(const ApiConfig& cfg, Context& ctx)
      : cfg_(cfg),
        ctx_(ctx),
        log_(get_logger("plugin.api")),
        server_(ServerLimits{cfg.threads, cfg.queue, cfg.max_body, cfg.timeout, cfg.request_timeout,
                             cfg.keep_alive_timeout, cfg.keep_alive_max},
                *log_),
        rejected_(ctx.metrics, "flowd_api_rejected_flows_total",
                  "Flows (or whole request bodies) POST /v1/flows refused, by reason"),
        watch_(plugin_info().name.data(), cfg.check_interval, ctx.metrics, log_) {
    auto& requests =
        prometheus::BuildCounter()
            .Name("flowd_api_requests_total")
            .Help("HTTP requests the api plugin answered, by endpoint and status class")
            .Register(ctx.metrics);
    for (std::size_t e = 0; e < kEndpointNames.size(); ++e)
      for (std::size_t c = 0; c < kCodeClasses.size(); ++c)
        requests_[e][c] = &requests.Add(
            {{"endpoint", std::string(kEndpointNames[e])}, {"code", std::string(kCodeClasses[c])}});
    flows_ = &prometheus::BuildCounter()
                  .Name("flowd_api_flows_total")
                  .Help("Flows received in POST /v1/flows bodies, accepted or not")
                  .Register(ctx.metrics)
                  .Add({});
    routes();
  }

  void start() override {
    watch_.take_shelved(ctx_.shelf);  // what a predecessor's checks found (inherit() in run())
    if (!cfg_.socket.empty()) {
      server_.add_listener(listen_unix({cfg_.socket, cfg_.mode, cfg_.group}), cfg_.socket);
      made_socket_ = true;
      log_->info("HTTP API on unix socket {} (mode {:04o})", cfg_.socket, cfg_.mode);
    }
    if (cfg_.listen) {
      server_.add_listener(listen_tcp(*cfg_.listen), cfg_.listen->to_string());
      log_->info("HTTP API on http://{}{}", cfg_.listen->to_string(),
                 cfg_.is_public && !is_loopback_host(cfg_.listen->host)
                     ? " (public = yes: reachable beyond this host)"
                     : "");
    }
  }

  void run(std::stop_token stop, Publisher& out) override {
    out_ = &out;
    // A reload restarted the api: the TCP flows its predecessor started are checked on.
    if (std::size_t n = watch_.inherit(ctx_.status))
      log_->info(
          "checking {} TCP flows started before this plugin (a reload, or a restart's flow "
          "journal)",
          n);
    // The check runs on the accepting thread, between two accepts.
    if (watch_.fd() >= 0) server_.add_timer(watch_.fd(), [this, &out] { watch_.on_timer(out); });
    server_.serve(stop, ctx_.heartbeats, "plugin.api");
  }

  void stop() override {
    watch_.shelve(ctx_.shelf);
    if (made_socket_) remove_unix_socket(cfg_.socket);
    made_socket_ = false;
  }

 private:
  void routes() {
    auto& r = server_.routes();
    r.Post("/v1/flows",
           [this](const httplib::Request& req, httplib::Response& res) { post_flows(req, res); });
    r.Get("/v1/flows",
          [this](const httplib::Request& req, httplib::Response& res) { get_flows(req, res); });
    r.Get("/v1/status", [this](const httplib::Request&, httplib::Response& res) {
      if (!ctx_.status) return send_error(res, 503, "unavailable", "no daemon status here");
      send_json(res, 200, status_json(ctx_.status->report(), Clock::now()));
    });
    // What httplib answers itself (404, 405, 400, 413: a body over max_body) gets a JSON body
    // too; a handler's own answer is left alone.
    r.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          // httplib answers 404 for any method without a route, also on a path that exists: that
          // is 405 with the methods it takes (DELETE, PUT, OPTIONS... on /v1/flows).
          if (res.status == 404)
            if (const char* allow = allowed_methods(req.path)) {
              res.status = 405;
              res.set_header("Allow", allow);
            }
          if (res.status == 413 && endpoint_of(req) == Endpoint::kFlowsPost) {
            rejected_.add(Reject::kTooLarge);
            // httplib (Debian's compiled 0.11) caps a body sent as a form at 8192 bytes whatever
            // max_body says, and curl -d sends one as a form unless told otherwise: say which
            // limit.
            if (req.get_header_value("Content-Type") == "application/x-www-form-urlencoded")
              send_error(res, 413, to_string(Reject::kTooLarge),
                         "a body sent as application/x-www-form-urlencoded (curl -d's default) is "
                         "limited to 8192 bytes by the HTTP library; send it with Content-Type: "
                         "application/json (up to [plugin.api] max_body)");
            else
              send_error(res, 413, to_string(Reject::kTooLarge),
                         fmt::format("the body is larger than {} bytes ([plugin.api] max_body)",
                                     cfg_.max_body));
          } else {
            send_error(res, res.status, "http", error_text(req, res.status));
          }
          return httplib::Server::HandlerResponse::Handled;
        }));
    r.set_exception_handler(
        [this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          limited_warn(*log_, error_limiter_, "request failed: {}", what);
          send_error(res, 500, "internal", what);
        });
    r.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      auto c = static_cast<std::size_t>(res.status / 100);
      if (c >= 1 && c <= 5)
        requests_[static_cast<std::size_t>(endpoint_of(req))][c - 1]->Increment();
    });
  }

  void post_flows(const httplib::Request& req, httplib::Response& res) {
    auto registry = ctx_.registry.get();
    auto parsed = parse_flow_request(req.body, *registry, Clock::now(), cfg_.max_flows);
    if (!parsed.body_ok) {
      rejected_.add(parsed.reason);
      warn_reject(parsed.reason, parsed.detail, std::nullopt);
      return send_error(res, parsed.reason == Reject::kTooMany ? 413 : 400,
                        to_string(parsed.reason), std::move(parsed.detail));
    }
    flows_->Increment(static_cast<double>(parsed.flows.size()));
    std::vector<FlowID> accepted;
    accepted.reserve(parsed.flows.size());
    nlohmann::json rejected = nlohmann::json::array();
    for (std::size_t i = 0; i < parsed.flows.size(); ++i) {
      auto& v = parsed.flows[i];
      if (v.flow) {
        accepted.push_back(std::move(*v.flow));
        continue;
      }
      rejected_.add(v.reason);
      warn_reject(v.reason, v.detail, i);
      rejected.push_back({{"index", i}, {"reason", to_string(v.reason)}, {"error", v.detail}});
    }
    // All the flows of one request go to the bus in one hand-over, as one read of the pipe does.
    // The TCP flows are followed for the check of their connections.
    if (!accepted.empty() && out_) watch_.publish(*out_, accepted);
    // 422: the body was read, some flow in it was not (the others were published).
    const int status = rejected.empty() ? 200 : 422;
    send_json(res, status, {{"accepted", accepted.size()}, {"rejected", std::move(rejected)}});
  }

  void get_flows(const httplib::Request& req, httplib::Response& res) {
    if (!ctx_.status) return send_error(res, 503, "unavailable", "no daemon status here");
    std::size_t limit = kDefaultListed;
    if (req.has_param("limit")) {
      auto text = req.get_param_value("limit");
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
      if (text.empty() || ec != std::errc() || p != text.data() + text.size() || limit == 0)
        return send_error(res, 400, "limit", "limit must be a positive integer");
    }
    auto flows = ctx_.status->active_flows(limit);
    auto total = ctx_.status->active_flow_count();
    send_json(res, 200, flows_json(flows, std::max(total, flows.size()), *ctx_.registry.get()));
  }

  void warn_reject(Reject reason, const std::string& detail, std::optional<std::size_t> index) {
    limited_warn(*log_, reject_limiter_, "POST /v1/flows: rejected {}({}: {})",
                 index ? fmt::format("flow {} ", *index) : std::string("the body "),
                 to_string(reason), detail);
  }

  ApiConfig cfg_;
  Context& ctx_;
  std::shared_ptr<spdlog::logger> log_;
  HttpServer server_;
  ReasonCounters<Reject, kRejectCount> rejected_;
  std::array<std::array<prometheus::Counter*, kCodeClasses.size()>, kEndpointNames.size()>
      requests_{};
  prometheus::Counter* flows_ = nullptr;
  Publisher* out_ = nullptr;  // set by run() before the server serves
  scanner::ConnectionWatch watch_;
  bool made_socket_ = false;
  LogLimiter reject_limiter_;
  LogLimiter error_limiter_;
};

std::unique_ptr<Plugin> create(const Section& cfg, Context& ctx, const char* /*name*/) {
  return std::make_unique<ApiPlugin>(ApiConfig::from(cfg), ctx);
}

}  // namespace

const PluginInfo& plugin_info() {
  static const PluginInfo info{
      "api",
      "local HTTP API: POST /v1/flows (flows as JSON), GET /v1/flows, GET /v1/status; unix "
      "socket and/or loopback",
      config_keys(),
      create,
      /*offers_records=*/false,
      /*explicit_reports=*/true};
  return info;
}

}  // namespace flowd::api
