// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/netflow_config.hpp"

namespace flowd::netflow {
namespace {

// The rows netflow and sflow share word for word (each table keeps its own order, the README's).
constexpr KeySpec kMaxFlowsKey = {
    "max_flows", KeyType::kInt,
    "100000",    "flows tracked at once; beyond this new ones are not reported",
    {},          1,
    10000000};
constexpr KeySpec kRulesKey = {
    "rules", KeyType::kList, "",
    "tags for flows without a Scitags flow label: 'PREFIX[:PORT] EXPERIMENT ACTIVITY', comma "
    "separated"};
constexpr KeySpec kRcvbufKey = {
    "rcvbuf", KeyType::kInt, "8388608", "UDP receive buffer in bytes (SO_RCVBUF)",
    {},       65536,         1073741824};
constexpr KeySpec kLabelNetworksKey = {
    "label_networks", KeyType::kList, "",
    "CIDR list (the site's storage networks): a label is a tag only on flows with an end inside; "
    "empty: any"};

constexpr KeySpec kKeys[] = {
    {"listen", KeyType::kList, "0.0.0.0:2055, 0.0.0.0:4739",
     "UDP addresses taking NetFlow v1/v5/v9 and IPFIX"},
    {"tcp_listen", KeyType::kList, "0.0.0.0:4739",
     "TCP addresses taking IPFIX over TCP; empty: none"},
    {"max_tcp_sessions",
     KeyType::kInt,
     "256",
     "IPFIX-over-TCP sessions open at once; a connection beyond this is closed at once and "
     "counted (the open sessions are kept)",
     {},
     1,
     65536},
    {"max_tcp_sessions_per_exporter",
     KeyType::kInt,
     "16",
     "IPFIX-over-TCP sessions open at once from one exporter address; beyond this as above",
     {},
     1,
     65536},
    {.name = "tcp_idle_timeout",
     .type = KeyType::kDuration,
     .default_value = "300",
     .help = "an IPFIX-over-TCP session that sends nothing for this long is closed and counted "
             "(RFC 7011 §10.4; exporters resend templates); 0: never",
     .min = 0,
     .max = 86400 * 1000},
    {.name = "template_timeout",
     .type = KeyType::kDuration,
     .default_value = "1800",
     .help = "how long a UDP template lives without a refresh",
     .min = 10 * 1000,
     .max = 86400 * 1000},
    {.name = "template_save_interval",
     .type = KeyType::kDuration,
     .default_value = "300",
     .help = "UDP templates and sampling options are saved to <work_dir>/templates.<section>.json "
             "this often and on stop, and taken back at start with the lifetime they had left; "
             "0: on stop only. Nothing is kept when work_dir is empty",
     .min = 0,
     .max = 86400 * 1000},
    {.name = "idle_timeout",
     .type = KeyType::kDuration,
     .default_value = "60",
     .help = "time without a record after which a flow ends",
     .min = 1000,
     .max = 86400 * 1000},
    kMaxFlowsKey,
    kRulesKey,
    {"dump", KeyType::kString, "",
     "write every decoded record as a JSON line to this file (.gz: gzip)"},
    kRcvbufKey,
    {"workers",
     KeyType::kInt,
     "1",
     "UDP receive threads; each has its own SO_REUSEPORT socket per listen address and its own "
     "templates "
     "(the kernel keeps an exporter on one socket)",
     {},
     1,
     64},
    {"apply_sampling", KeyType::kBool, "no",
     "multiply packet and octet counters by the exporter's sampling rate (v5 header, v9/IPFIX "
     "sampling options)"},
    {"max_templates",
     KeyType::kInt,
     "4096",
     "templates kept per exporter address and port; more are refused and counted",
     {},
     1,
     65535},
    {"max_template_bytes_per_exporter",
     KeyType::kInt,
     "4194304",
     "bytes the templates of one exporter address may hold, all its ports and TCP sessions "
     "together (fields x 12 bytes + the raw record + about 400 bytes each); the least recently "
     "defined or refreshed are evicted to make room, a larger template is refused; both counted",
     {},
     65536,
     1073741824},
    {"max_template_bytes",
     KeyType::kInt,
     "67108864",
     "bytes the templates of all exporters may hold together (at least "
     "max_template_bytes_per_exporter); the least recently defined or refreshed are evicted",
     {},
     65536,
     17179869184},
    {"label_trust",
     KeyType::kChoice,
     "registered",
     "when a flowLabelIPv6 is a Scitags tag: registered (its experiment/activity pair is in the "
     "registry), any "
     "(non-zero Scitags bits; labs only), off (never; only rules tag)",
     {},
     0,
     0,
     "registered,any,off"},
    kLabelNetworksKey,
    {"allow", KeyType::kList, "",
     "CIDR list of exporters taken (UDP sources, TCP peers); others are dropped and counted; "
     "empty: all"},
    {"max_exporter_series",
     KeyType::kInt,
     "64",
     "exporters (address and observation domain) with series of their own in the per-exporter "
     "metrics, the first seen first; the rest are counted under exporter=\"other\"; 0: all "
     "under other",
     {},
     0,
     100000},
};

// sflow: the same receive, tracking and trust keys; no TCP and no templates.
constexpr KeySpec kSflowKeys[] = {
    {"listen", KeyType::kList, "0.0.0.0:6343", "UDP addresses taking sFlow v5"},
    {.name = "idle_timeout",
     .type = KeyType::kDuration,
     .default_value = "60",
     .help = "time without a sample after which a flow ends",
     .min = 1000,
     .max = 86400 * 1000},
    kMaxFlowsKey,
    kRulesKey,
    {"dump", KeyType::kString, "",
     "write every decoded sample as a JSON line to this file (.gz: gzip)"},
    kRcvbufKey,
    {"workers",
     KeyType::kInt,
     "1",
     "UDP receive threads; each has its own SO_REUSEPORT socket per listen address (the kernel "
     "keeps an agent "
     "on one socket)",
     {},
     1,
     64},
    {"apply_sampling", KeyType::kBool, "no",
     "multiply each sample's packet and octet counts by its sampling rate in dumps (metrics always "
     "scale)"},
    {"label_trust",
     KeyType::kChoice,
     "registered",
     "when a sampled packet's IPv6 flow label is a Scitags tag: registered, any (labs only), off",
     {},
     0,
     0,
     "registered,any,off"},
    kLabelNetworksKey,
    {"allow", KeyType::kList, "",
     "CIDR list of sFlow agents taken (UDP sources); others are dropped and counted"},
    {"max_exporter_series",
     KeyType::kInt,
     "64",
     "agents (agent address and sub-agent id) with series of their own in the per-agent metrics, "
     "the first seen first; the rest are counted under agent=\"other\"; 0: all under other",
     {},
     0,
     100000},
};

std::vector<net::Prefix> prefixes(const Section& cfg, const char* key) {
  std::vector<net::Prefix> out;
  for (const auto& text : cfg.get_list(key)) {
    std::string why;
    auto p = net::parse_network(text, why);
    if (!p) throw ConfigError("[" + cfg.name() + "] " + key + ": '" + text + "' " + why);
    out.push_back(*p);
  }
  return out;
}

std::vector<net::Endpoint> endpoints(const Section& cfg, const char* key,
                                     std::uint16_t default_port) {
  std::vector<net::Endpoint> out;
  for (const auto& text : cfg.get_list(key)) {
    auto ep = net::parse_endpoint(text, default_port);
    if (!ep) throw ConfigError("[" + cfg.name() + "] " + key + ": cannot parse " + text);
    out.push_back(*ep);
  }
  return out;
}

}  // namespace

std::span<const KeySpec> netflow_keys() {
  return kKeys;
}
std::span<const KeySpec> sflow_keys() {
  return kSflowKeys;
}

NetflowConfig NetflowConfig::from(const Section& cfg, Wire wire, const ScitagsRegistry& registry) {
  NetflowConfig c;
  c.wire = wire;
  c.section = cfg.name();
  c.listen = endpoints(cfg, "listen", wire == Wire::kSflow ? 6343 : 2055);
  if (wire == Wire::kNetflow) {
    c.tcp_listen = endpoints(cfg, "tcp_listen", 4739);
    c.max_tcp_sessions = static_cast<std::size_t>(cfg.get_int("max_tcp_sessions"));
    c.max_tcp_sessions_per_exporter =
        static_cast<std::size_t>(cfg.get_int("max_tcp_sessions_per_exporter"));
    c.tcp_idle_timeout = std::chrono::seconds(cfg.get_int("tcp_idle_timeout"));
  }
  c.idle_timeout = std::chrono::seconds(cfg.get_int("idle_timeout"));
  c.dump = cfg.get("dump");
  c.rcvbuf = static_cast<int>(cfg.get_int("rcvbuf"));
  c.workers = static_cast<std::size_t>(cfg.get_int("workers"));
  c.max_flows = static_cast<std::size_t>(cfg.get_int("max_flows"));
  c.limits.apply_sampling = cfg.get_bool("apply_sampling");
  c.sflow_limits.apply_sampling = c.limits.apply_sampling;
  if (wire == Wire::kNetflow) {
    c.limits.template_timeout = std::chrono::seconds(cfg.get_int("template_timeout"));
    c.template_save_interval = std::chrono::seconds(cfg.get_int("template_save_interval"));
    c.limits.max_templates_per_exporter = static_cast<std::size_t>(cfg.get_int("max_templates"));
    c.limits.max_template_bytes_per_exporter =
        static_cast<std::size_t>(cfg.get_int("max_template_bytes_per_exporter"));
    c.limits.max_template_bytes = static_cast<std::size_t>(cfg.get_int("max_template_bytes"));
    if (c.limits.max_template_bytes < c.limits.max_template_bytes_per_exporter)
      throw ConfigError("[" + cfg.name() +
                        "] max_template_bytes: " + std::to_string(c.limits.max_template_bytes) +
                        " is less than max_template_bytes_per_exporter (" +
                        std::to_string(c.limits.max_template_bytes_per_exporter) + ")");
  }
  for (const auto& text : cfg.get_list("rules")) {
    std::string error;
    auto r = parse_rule(text, registry, error);
    if (!r) throw ConfigError("[" + cfg.name() + "] rules: '" + text + "': " + error);
    c.rules.push_back(*r);
  }
  const auto trust = parse_label_trust(cfg.get("label_trust"));
  if (!trust)
    throw ConfigError("[" + cfg.name() + "] label_trust: '" + cfg.get("label_trust") +
                      "' is not one of registered, any, off");
  c.label_trust = *trust;
  c.label_networks = prefixes(cfg, "label_networks");
  c.allow = prefixes(cfg, "allow");
  c.max_exporter_series = static_cast<std::size_t>(cfg.get_int("max_exporter_series"));
  return c;
}

}  // namespace flowd::netflow
