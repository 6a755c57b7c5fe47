// SPDX-License-Identifier: Apache-2.0
// INI configuration: parse_ini, validate_config, print_config, closest_match and Section.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "app/components.hpp"
#include "core/config_loader.hpp"
#include "flowd/config.hpp"

namespace flowd {
namespace {

constexpr const char* kPath = "/etc/flowd/test.ini";

Config load(std::string_view text) {
  return validate_config(parse_ini(text, kPath), component_table());
}

// The message of the ConfigError that loading `text` throws; fails the test if nothing is thrown.
std::string config_error(std::string_view text) {
  try {
    load(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return {};
}

void expect_contains(const std::string& haystack, std::string_view needle) {
  EXPECT_NE(haystack.find(needle), std::string::npos) << "'" << needle << "' not in: " << haystack;
}

const BackendConfig* find_backend_config(const Config& c, std::string_view name) {
  for (const auto& b : c.backends)
    if (b.info->name == name) return &b;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Valid files and defaults.

TEST(ConfigValidate, MinimalConfigFillsDefaults) {
  Config c = load("[flowd]\nplugins = np_api\n");
  EXPECT_EQ(c.path, kPath);
  EXPECT_FALSE(c.legacy);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.core.name(), "flowd");
  EXPECT_EQ(c.core.get_list("plugins"), std::vector<std::string>{"np_api"});
  EXPECT_TRUE(c.core.is_set("plugins"));
  // Defaults of the core table.
  EXPECT_EQ(c.core.get_list("backends"), std::vector<std::string>{"udp_firefly"});
  EXPECT_FALSE(c.core.is_set("backends"));
  EXPECT_EQ(c.core.get("flow_map_api"), "");
  EXPECT_EQ(c.core.get_int("flow_map_timeout"), 5);
  EXPECT_EQ(c.core.get("work_dir"), "/var/cache/flowd");
  EXPECT_EQ(c.core.get("log_level"), "info");
  EXPECT_GE(c.core.get_int("queue_size"), 1);
  EXPECT_EQ(c.core.get("hostname"), "");

  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].info->name, "np_api");
  const Section& np = c.plugins[0].section;
  EXPECT_EQ(np.name(), "plugin.np_api");
  EXPECT_EQ(np.get("path"), "/var/run/flowd");
  EXPECT_EQ(np.get("mode"), "0666");
  EXPECT_EQ(np.get_int("max_line_length"), 4096);
  EXPECT_EQ(np.get_int("partial_timeout_ms"), 1000);
  EXPECT_FALSE(np.is_set("path"));

  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_EQ(c.backends[0].info->name, "udp_firefly");
  const Section& uf = c.backends[0].section;
  EXPECT_EQ(uf.name(), "backend.udp_firefly");
  EXPECT_EQ(uf.get_int("port"), 10514);
  EXPECT_EQ(uf.get("collector"), "");
  EXPECT_TRUE(uf.get_bool("syslog_header"));
  EXPECT_EQ(uf.get_int("max_tracked_flows"), 100000);
}

// Every key the file did not set holds its table default.
void expect_table_defaults(const Section& s, std::initializer_list<std::string_view> skip = {}) {
  SCOPED_TRACE(s.name());
  for (const auto& k : s.keys()) {
    if (std::find(skip.begin(), skip.end(), k.name) != skip.end()) continue;
    EXPECT_FALSE(s.is_set(k.name)) << k.name;
    EXPECT_EQ(s.get(k.name), k.default_value) << k.name;
  }
}

TEST(ConfigValidate, UnsetKeysTakeTheTableDefaults) {
  Config c = load("[flowd]\nplugins = np_api\nbackends = udp_firefly, prometheus\n");
  expect_table_defaults(c.core, {"plugins", "backends"});
  for (const auto& p : c.plugins) expect_table_defaults(p.section);
  for (const auto& b : c.backends) expect_table_defaults(b.section);
  ASSERT_EQ(c.backends.size(), 2u);
  EXPECT_EQ(c.backends[1].section.get("listen"), "127.0.0.1:9000");
}

TEST(ConfigValidate, FullConfig) {
  Config c = load(
      "; a comment\n"
      "# another comment\n"
      "[flowd]\n"
      "plugins = np_api\n"
      "backends = udp_firefly, prometheus ; inline comment\n"
      "flow_map_api = /etc/flowd/api.json\n"
      "log_level = debug\n"
      "queue_size = 16\n"
      "\n"
      "[plugin.np_api]\n"
      "path = /run/flowd/np\n"
      "mode = 660\n"
      "group = flowd\n"
      "\n"
      "[backend.udp_firefly]\n"
      "port = 10515\n"
      "collector = [2001:db8::7]:514\n"
      "ip4_src = 192.0.2.1\n"
      "ip6_src = 2001:DB8:0::1\n"
      "syslog_header = off\n"
      "\n"
      "[backend.prometheus]\n"
      "listen = 0.0.0.0:9100\n");
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.core.get_list("backends"), (std::vector<std::string>{"udp_firefly", "prometheus"}));
  EXPECT_EQ(c.core.get("flow_map_api"), "/etc/flowd/api.json");
  EXPECT_EQ(c.core.get("log_level"), "debug");
  EXPECT_EQ(c.core.get_int("queue_size"), 16);
  const Section& np = c.plugins.at(0).section;
  EXPECT_EQ(np.get("path"), "/run/flowd/np");
  EXPECT_EQ(np.get("mode"), "0660");  // normalised to four octal digits
  EXPECT_EQ(np.get("group"), "flowd");
  EXPECT_TRUE(np.is_set("mode"));
  ASSERT_EQ(c.backends.size(), 2u);
  const Section& uf = c.backends[0].section;
  EXPECT_EQ(uf.get_int("port"), 10515);
  EXPECT_EQ(uf.get("collector"), "[2001:db8::7]:514");
  EXPECT_EQ(uf.get("ip4_src"), "192.0.2.1");
  EXPECT_EQ(uf.get("ip6_src"), "2001:db8::1");  // normalised
  EXPECT_FALSE(uf.get_bool("syslog_header"));
  EXPECT_EQ(uf.get("syslog_header"), "no");
  EXPECT_EQ(c.backends[1].info->name, "prometheus");
  EXPECT_EQ(c.backends[1].section.get("listen"), "0.0.0.0:9100");
}

TEST(ConfigValidate, AliasUdpDashFirefly) {
  Config c = load(
      "[flowd]\nplugins = np_api\nbackends = udp-firefly\n[backend.udp-firefly]\nport = 2000\n");
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_EQ(c.backends[0].info->name, "udp_firefly");
  EXPECT_EQ(c.backends[0].section.name(), "backend.udp_firefly");
  EXPECT_EQ(c.backends[0].section.get_int("port"), 2000);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(ConfigValidate, ListContinuationLines) {
  Config c = load(
      "[flowd]\n"
      "plugins = np_api\n"
      "backends = udp_firefly,\n"
      "    prometheus\n"
      "log_level = warn\n");
  EXPECT_EQ(c.core.get_list("backends"), (std::vector<std::string>{"udp_firefly", "prometheus"}));
  ASSERT_EQ(c.backends.size(), 2u);
  EXPECT_EQ(c.backends[1].info->name, "prometheus");
  EXPECT_EQ(c.core.get("log_level"), "warn");

  // Without the trailing comma the continuation is a new item too.
  Config d = load("[flowd]\nplugins =\n  np_api\nbackends = prometheus\n  udp_firefly\n");
  EXPECT_EQ(d.core.get_list("plugins"), std::vector<std::string>{"np_api"});
  EXPECT_EQ(d.core.get_list("backends"), (std::vector<std::string>{"prometheus", "udp_firefly"}));
}

TEST(ConfigValidate, SectionPresentButNotListedWarns) {
  Config c = load(
      "[flowd]\nplugins = np_api\nbackends = udp_firefly\n[backend.prometheus]\nlisten = "
      "127.0.0.1:9100\n");
  ASSERT_EQ(c.warnings.size(), 1u);
  expect_contains(c.warnings[0], kPath);
  expect_contains(c.warnings[0], "[backend.prometheus]");
  expect_contains(c.warnings[0], "'prometheus' is not in [flowd] backends");
  EXPECT_EQ(c.backends.size(), 1u);
}

TEST(ConfigValidate, AFixedExperimentWithoutActivityWarnsThatItsActivityIsZero) {
  for (const char* plugin : {"kernel", "netlink", "netstat"}) {
    const std::string head =
        std::string("[flowd]\nplugins = ") + plugin + "\n[plugin." + plugin + "]\nexperiment = 2\n";
    Config c = load(head);
    ASSERT_EQ(c.warnings.size(), 1u) << plugin;
    expect_contains(c.warnings[0], kPath);
    expect_contains(c.warnings[0], std::string("[plugin.") + plugin +
                                       "] experiment = 2 without activity: its connections are "
                                       "tagged activity 0");
    // An activity given, even an empty one (the original's '' is 0) or 0, is the user's choice.
    for (const char* activity : {"activity = 1\n", "activity =\n", "activity = 0\n"})
      EXPECT_TRUE(load(head + activity).warnings.empty()) << plugin << " " << activity;
    // An empty experiment is no fixed tag (its own error, where one is required): no warning.
    EXPECT_TRUE(load(std::string("[flowd]\nplugins = ") + plugin + "\n[plugin." + plugin +
                     "]\nexperiment =\n")
                    .warnings.empty())
        << plugin;
  }
  // Rules alone carry their own activity.
  EXPECT_TRUE(
      load("[flowd]\nplugins = kernel\n[plugin.kernel]\nrules = 5000 2 1\n").warnings.empty());
}

TEST(ConfigValidate, KafkaRecordsWithoutACollectorPluginWarns) {
  const std::string kafka = "[backend.kafka]\nbrokers = 127.0.0.1:9092\n";
  Config c = load("[flowd]\nplugins = np_api\nbackends = kafka\n" + kafka + "records = yes\n");
  ASSERT_EQ(c.warnings.size(), 1u);
  expect_contains(c.warnings[0], kPath);
  expect_contains(c.warnings[0], "[backend.kafka] records = yes, but no collector plugin");
  expect_contains(c.warnings[0], "(netflow, sflow)");
  // Not when a collector is listed, nor without records.
  for (const char* plugins : {"np_api, netflow", "sflow"})
    EXPECT_TRUE(load(std::string("[flowd]\nplugins = ") + plugins + "\nbackends = kafka\n" + kafka +
                     "records = yes\n")
                    .warnings.empty())
        << plugins;
  EXPECT_TRUE(load("[flowd]\nplugins = np_api\nbackends = kafka\n" + kafka).warnings.empty());
}

TEST(ConfigValidate, UnlistedSectionIsStillChecked) {
  auto e =
      config_error("[flowd]\nplugins = np_api\n[backend.prometheus]\nlisten = nowhere:99999\n");
  expect_contains(e, "[backend.prometheus] listen");
  expect_contains(e, "expected");
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(ConfigErrors, UnknownKeyNamesFileSectionKeyAndSuggestion) {
  auto e = config_error("[flowd]\nplugins = np_api\n[backend.udp_firefly]\nportt = 1\n");
  expect_contains(e, kPath);
  expect_contains(e, "[backend.udp_firefly]");
  expect_contains(e, "unknown key 'portt'");
  expect_contains(e, "did you mean 'port'?");

  e = config_error("[flowd]\nplugin = np_api\n");
  expect_contains(e, "[flowd] unknown key 'plugin'");
  expect_contains(e, "did you mean 'plugins'?");

  // Nothing close: no suggestion.
  e = config_error("[flowd]\nplugins = np_api\nzzzzzzzzzz = 1\n");
  expect_contains(e, "unknown key 'zzzzzzzzzz'");
  EXPECT_EQ(e.find("did you mean"), std::string::npos) << e;
}

TEST(ConfigErrors, UnknownSection) {
  auto e = config_error("[flowd]\nplugins = np_api\n[global]\nx = 1\n");
  expect_contains(e, kPath);
  expect_contains(e, "unknown section [global]");

  e = config_error("[flowd]\nplugins = np_api\n[plugin.np_apii]\npath = /x\n");
  expect_contains(e, "unknown plugin 'np_apii'");
  expect_contains(e, "did you mean 'np_api'?");

  e = config_error("[flowd]\nplugins = np_api\n[backend.udpfirefly]\nport = 1\n");
  expect_contains(e, "unknown backend 'udpfirefly'");
  expect_contains(e, "did you mean 'udp_firefly'?");
}

TEST(ConfigErrors, UnknownComponentsInLists) {
  auto e = config_error("[flowd]\nplugins = np-api\n");
  expect_contains(e, kPath);
  expect_contains(e, "[flowd] plugins: unknown plugin 'np-api'");
  expect_contains(e, "did you mean 'np_api'?");
  expect_contains(e, "available: np_api");

  e = config_error("[flowd]\nplugins = np_api\nbackends = udp_firefly, prometeus\n");
  expect_contains(e, "[flowd] backends: unknown backend 'prometeus'");
  expect_contains(e, "did you mean 'prometheus'?");
  expect_contains(e, "available: udp_firefly, prometheus");

  e = config_error("[flowd]\nplugins = netlnk\n");
  expect_contains(e, "unknown plugin 'netlnk'");
  expect_contains(e, "did you mean 'netlink'?");
}

TEST(ConfigErrors, ComponentListedTwice) {
  expect_contains(config_error("[flowd]\nplugins = np_api, np_api\n"), "listed twice");
  expect_contains(config_error("[flowd]\nplugins = np_api\nbackends = udp_firefly, udp-firefly\n"),
                  "listed twice");
}

TEST(ConfigErrors, PluginsMissing) {
  auto e = config_error("[flowd]\nbackends = udp_firefly\n");
  expect_contains(e, kPath);
  expect_contains(e, "[flowd] plugins: expected at least one of np_api");
  // No [flowd] at all.
  e = config_error("[plugin.np_api]\npath = /x\n");
  expect_contains(e, "[flowd] plugins: expected");
  // An empty list (commas alone are empty items).
  expect_contains(config_error("[flowd]\nplugins = , ,\n"), "[flowd] plugins: an empty item");
  // An empty backend list is an error too.
  expect_contains(config_error("[flowd]\nplugins = np_api\nbackends =\n"),
                  "[flowd] backends: expected");
}

struct BadValue {
  const char* section;
  const char* line;
  const char* key;  // as it appears in the message
};

TEST(ConfigErrors, BadValuesSayWhatWasExpected) {
  const BadValue cases[] = {
      {"flowd", "queue_size = lots", "[flowd] queue_size"},
      {"flowd", "queue_size = 0", "[flowd] queue_size"},
      {"flowd", "queue_size = 10000001", "[flowd] queue_size"},
      {"flowd", "queue_size = 12abc", "[flowd] queue_size"},
      {"flowd", "flow_map_timeout = 99999999999999999999999", "[flowd] flow_map_timeout"},
      {"flowd", "log_level = verbose", "[flowd] log_level"},
      {"plugin.netstat", "proc_dir =", "[plugin.netstat] proc_dir"},
      {"plugin.np_api", "mode = 0999", "[plugin.np_api] mode"},
      {"plugin.np_api", "mode = 17777", "[plugin.np_api] mode"},
      {"plugin.np_api", "mode = rw-rw-rw-", "[plugin.np_api] mode"},
      {"plugin.np_api", "max_line_length = 63", "[plugin.np_api] max_line_length"},
      {"backend.udp_firefly", "syslog_header = maybe", "[backend.udp_firefly] syslog_header"},
      {"backend.udp_firefly", "port = 65536", "[backend.udp_firefly] port"},
      {"backend.udp_firefly", "port = -1", "[backend.udp_firefly] port"},
      {"backend.udp_firefly", "collector = host:0", "[backend.udp_firefly] collector"},
      {"backend.udp_firefly", "collector = [::1", "[backend.udp_firefly] collector"},
      {"backend.udp_firefly", "collector = bad host", "[backend.udp_firefly] collector"},
      {"backend.udp_firefly", "ip4_src = ::1", "[backend.udp_firefly] ip4_src"},
      {"backend.udp_firefly", "ip4_src = 1.2.3.256", "[backend.udp_firefly] ip4_src"},
      {"backend.udp_firefly", "ip6_src = 192.0.2.1", "[backend.udp_firefly] ip6_src"},
      {"backend.udp_firefly", "ip6_src = fe80::g", "[backend.udp_firefly] ip6_src"},
      {"backend.prometheus", "listen = 127.0.0.1:http", "[backend.prometheus] listen"},
  };
  for (const auto& c : cases) {
    std::string text = "[flowd]\nplugins = np_api\nbackends = udp_firefly, prometheus\n";
    text += std::string("[") + c.section + "]\n" + c.line + "\n";
    auto e = config_error(text);
    SCOPED_TRACE(c.line);
    expect_contains(e, kPath);
    expect_contains(e, c.key);
    expect_contains(e, "expected");
  }
}

// try15 fix15i: a list key took a trailing or doubled comma silently (`rules = 5000 atlas/perf, `).
// Every list key refuses an empty item, naming the file, section, key and which item; a comma
// that ends a line before a continuation line still continues the list.
TEST(ConfigErrors, EmptyListItemsAreRefusedNamingKeyAndItem) {
  const std::string kernel = "[flowd]\nplugins = kernel\nbackends = prometheus\n[plugin.kernel]\n";
  struct Case {
    std::string value, item;
  };
  for (const auto& c : std::vector<Case>{{"5000 atlas perf,", "item 2 of 2"},
                                         {"5000 atlas perf, ", "item 2 of 2"},
                                         {", 5000 atlas perf", "item 1 of 2"},
                                         {"5000 atlas perf,,5001 atlas perf", "item 2 of 3"},
                                         {"5000 atlas perf, ,5001 atlas perf", "item 2 of 3"},
                                         {",", "item 1 of 2"}}) {
    const std::string e = config_error(kernel + "rules = " + c.value + "\n");
    expect_contains(e, kPath);
    expect_contains(e, "[plugin.kernel] rules: an empty item");
    expect_contains(e, c.item);
    expect_contains(e, "remove the extra comma");
  }
  // The core's lists, another component's and the endpoint lists alike.
  expect_contains(config_error("[flowd]\nplugins = np_api,\n"), "[flowd] plugins: an empty item");
  expect_contains(config_error("[flowd]\nplugins = np_api\nbackends = udp_firefly,,prometheus\n"),
                  "[flowd] backends: an empty item in \"udp_firefly,,prometheus\": item 2 of 3");
  expect_contains(config_error(kernel + "internal_networks = 10.0.0.0/8,\n"),
                  "[plugin.kernel] internal_networks: an empty item");
  expect_contains(config_error("[flowd]\nplugins = np_api\n[backend.udp_firefly]\ncollector = "
                               "127.0.0.1,,127.0.0.2\n"),
                  "[backend.udp_firefly] collector: an empty item");
  // Continuation lines: a comma at the end of one line continues the list; two commas across the
  // join are an empty item all the same.
  Config ok = load(kernel + "rules = 5000 atlas perf,\n  5001 atlas perf\n");
  EXPECT_EQ(ok.plugins.at(0).section.get_list("rules"),
            (std::vector<std::string>{"5000 atlas perf", "5001 atlas perf"}));
  expect_contains(config_error(kernel + "rules = 5000 atlas perf,\n  , 5001 atlas perf\n"),
                  "item 2 of 3");
  // An empty value is the empty list, not an empty item.
  EXPECT_TRUE(load(kernel + "rules =\nexperiment = 2\nactivity = 9\n")
                  .plugins.at(0)
                  .section.get_list("rules")
                  .empty());
}

TEST(ConfigErrors, BadIntMessageNamesTheRange) {
  auto e = config_error("[flowd]\nplugins = np_api\nqueue_size = lots\n");
  EXPECT_EQ(e, std::string(kPath) +
                   ": [flowd] queue_size: expected an integer 1..10000000, got \"lots\"");
}

TEST(ConfigErrors, ScalarKeySetTwice) {
  auto e = config_error("[flowd]\nplugins = np_api\nlog_level = info\nlog_level = debug\n");
  expect_contains(e, kPath);
  expect_contains(e, "[flowd] log_level is set more than once");
  // An indented continuation of a scalar is the same mistake.
  e = config_error("[flowd]\nplugins = np_api\n[backend.udp_firefly]\nport = 1\n  2\n");
  expect_contains(e, "[backend.udp_firefly] port is set more than once");
}

TEST(ConfigErrors, LineLongerThan198) {
  // 198 characters is the longest line inih reads whole.
  std::string value(198 - std::string("flow_map_api = ").size(), 'a');
  std::string ok_line = "flow_map_api = " + value;
  ASSERT_EQ(ok_line.size(), 198u);
  Config c = load("[flowd]\nplugins = np_api\n" + ok_line + "\n");
  EXPECT_EQ(c.core.get("flow_map_api"), value);

  std::string long_line = ok_line + "a";
  auto e = config_error("[flowd]\nplugins = np_api\n" + long_line + "\n");
  expect_contains(e, std::string(kPath) + ":3:");
  expect_contains(e, "longer than 198");
  // A long comment is a long line too.
  e = config_error("[flowd]\n; " + std::string(300, 'c') + "\nplugins = np_api\n");
  expect_contains(e, std::string(kPath) + ":2:");
}

TEST(ConfigErrors, SyntaxErrors) {
  auto e = config_error("[flowd]\nplugins = np_api\nthis is not ini\n");
  expect_contains(e, std::string(kPath) + ":3:");
  expect_contains(e, "expected");
  e = config_error("plugins = np_api\n[flowd]\n");
  expect_contains(e, "before any [section]");
  using namespace std::string_literals;
  EXPECT_THROW(parse_ini("[flowd]\nplugins = np\0api\n"s, kPath), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// print_config.

TEST(PrintConfig, MarksDefaults) {
  Config c = load("[flowd]\nplugins = np_api\nqueue_size = 100\n");
  std::string out = print_config(c);
  expect_contains(out, std::string("; effective configuration of ") + kPath);
  expect_contains(out, "\n[flowd]\n");
  expect_contains(out, "\nqueue_size = 100\n");
  expect_contains(out, "\nlog_level = info    ; default\n");
  expect_contains(out, "\n[plugin.np_api]\n");
  expect_contains(out, "\npath = /var/run/flowd    ; default\n");
  expect_contains(out, "\n[backend.udp_firefly]\n");
  expect_contains(out, "\nport = 10514    ; default\n");
}

void expect_same_config(const Config& a, const Config& b) {
  EXPECT_EQ(a.core, b.core);
  EXPECT_EQ(a.core.values(), b.core.values());
  ASSERT_EQ(a.plugins.size(), b.plugins.size());
  for (std::size_t i = 0; i < a.plugins.size(); ++i) {
    EXPECT_EQ(a.plugins[i].info, b.plugins[i].info);
    EXPECT_EQ(a.plugins[i].section.values(), b.plugins[i].section.values());
    EXPECT_EQ(a.plugins[i].section, b.plugins[i].section);
  }
  ASSERT_EQ(a.backends.size(), b.backends.size());
  for (std::size_t i = 0; i < a.backends.size(); ++i) {
    EXPECT_EQ(a.backends[i].info, b.backends[i].info);
    EXPECT_EQ(a.backends[i].section.values(), b.backends[i].section.values());
    EXPECT_EQ(a.backends[i].section, b.backends[i].section);
  }
}

TEST(PrintConfig, RoundTripsMinimal) {
  Config first = load("[flowd]\nplugins = np_api\n");
  std::string printed = print_config(first);
  Config second = load(printed);
  expect_same_config(first, second);
  // Printed again, only the "; default" markers go (every key is now set explicitly).
  std::string again = print_config(second);
  EXPECT_EQ(again.find("; default"), std::string::npos) << again;
  std::string stripped = printed;
  for (auto at = stripped.find("    ; default"); at != std::string::npos;
       at = stripped.find("    ; default"))
    stripped.erase(at, std::string_view("    ; default").size());
  EXPECT_EQ(again, stripped);
}

TEST(PrintConfig, RoundTripsFull) {
  Config first = load(
      "[flowd]\n"
      "plugins = np_api\n"
      "backends = udp-firefly,\n"
      "   prometheus\n"
      "flow_map_api = https://www.scitags.org/api.json\n"
      "flow_map_timeout = 7\n"
      "log_level = trace\n"
      "hostname = host.example\n"
      "[plugin.np_api]\n"
      "path = /run/flowd/np\n"
      "mode = 600\n"
      "max_line_length = 64\n"
      "[backend.udp_firefly]\n"
      "collector = collector.example:514\n"
      "ip4_src = 192.0.2.1\n"
      "ip6_src = 2001:db8::1\n"
      "syslog_header = false\n"
      "[backend.prometheus]\n"
      "listen = [::1]:9100\n");
  Config second = load(print_config(first));
  expect_same_config(first, second);
  EXPECT_EQ(second.backends.at(0).section.get("syslog_header"), "no");
  EXPECT_EQ(second.plugins.at(0).section.get("mode"), "0600");
}

TEST(PrintConfig, RoundTripsAValueNearTheLineLimit) {
  // A file flowd accepts must print as a file flowd accepts: "path=" written without spaces
  // becomes "path = ", two characters longer.
  std::string line = "path=/" + std::string(198 - 6, 'p');
  ASSERT_EQ(line.size(), 198u);
  Config first = load("[flowd]\nplugins = np_api\n[plugin.np_api]\n" + line + "\n");
  std::string printed = print_config(first);
  Config second;
  ASSERT_NO_THROW(second = load(printed)) << printed;
  expect_same_config(first, second);
}

TEST(PrintConfig, RoundTripsAValueThatStartsWithACommentCharacter) {
  // inih reads "path =;x" as the value ";x" but "path = ;x" as an empty value plus a comment:
  // the printed line must keep the first form (found by ini_config_fuzz).
  for (const char* value : {";x y", "#x"}) {
    Config first =
        load(std::string("[flowd]\nplugins = np_api\n[plugin.np_api]\npath =") + value + "\n");
    ASSERT_EQ(first.plugins.at(0).section.get("path"), value);
    std::string printed = print_config(first);
    Config second;
    ASSERT_NO_THROW(second = load(printed)) << printed;
    expect_same_config(first, second);
  }
}

// ---------------------------------------------------------------------------------------------
// closest_match and Section.

TEST(ClosestMatch, WithinTwoEdits) {
  const std::vector<std::string> keys{"port", "collector", "ip4_src", "ip6_src", "syslog_header"};
  EXPECT_EQ(closest_match("portt", keys), "port");
  EXPECT_EQ(closest_match("prt", keys), "port");
  EXPECT_EQ(closest_match("PORT", keys), "port");  // case is free
  EXPECT_EQ(closest_match("colector", keys), "collector");
  EXPECT_EQ(closest_match("ip4src", keys), "ip4_src");
  EXPECT_EQ(closest_match("syslogheadr", keys), "syslog_header");
  EXPECT_EQ(closest_match("pxyt", keys), "port");  // two edits
  EXPECT_EQ(closest_match("pxyz", keys), "");      // three edits: too far
  EXPECT_EQ(closest_match("something", keys), "");
  EXPECT_EQ(closest_match("port", {}), "");
  // The closest wins, the first of equals.
  EXPECT_EQ(closest_match("ip5_src", keys), "ip4_src");
}

TEST(SectionApi, Accessors) {
  Config c = load("[flowd]\nplugins = np_api\nbackends = udp_firefly , prometheus\n");
  const Section& s = c.core;
  EXPECT_EQ(s.get("backends"), "udp_firefly, prometheus");
  EXPECT_EQ(s.get_list("backends"), (std::vector<std::string>{"udp_firefly", "prometheus"}));
  EXPECT_EQ(s.get_int("flow_map_timeout"), 5);
  EXPECT_TRUE(s.is_set("backends"));
  EXPECT_FALSE(s.is_set("flow_map_timeout"));
  EXPECT_FALSE(s.is_set("no_such_key"));
  EXPECT_THROW(s.get("no_such_key"), std::logic_error);
  EXPECT_THROW(s.get_int("no_such_key"), std::logic_error);
  EXPECT_FALSE(s.keys().empty());
  EXPECT_TRUE(std::any_of(s.keys().begin(), s.keys().end(),
                          [](const KeySpec& k) { return k.name == "plugins"; }));
  EXPECT_NE(find_backend_config(c, "prometheus"), nullptr);
}

TEST(ConfigHelpers, ParseBool) {
  for (std::string_view t : {"yes", "YES", "true", "True", "on", "1", " yes "}) {
    bool b = false;
    EXPECT_TRUE(parse_bool(t, b)) << t;
    EXPECT_TRUE(b) << t;
  }
  for (std::string_view f : {"no", "False", "off", "0", "\tno"}) {
    bool b = true;
    EXPECT_TRUE(parse_bool(f, b)) << f;
    EXPECT_FALSE(b) << f;
  }
  bool b = false;
  EXPECT_FALSE(parse_bool("", b));
  EXPECT_FALSE(parse_bool("2", b));
  EXPECT_FALSE(parse_bool("yess", b));
}

TEST(ConfigHelpers, SplitListAndTrim) {
  EXPECT_EQ(split_list(" a, b ,,c,\n d \n"), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_TRUE(split_list("").empty());
  EXPECT_TRUE(split_list(" , ,").empty());
  EXPECT_EQ(trim(" \t x y \r\n"), "x y");
  EXPECT_EQ(trim(""), "");
}

}  // namespace
}  // namespace flowd

namespace flowd {
namespace {

using std::chrono::milliseconds;

TEST(Durations, ParseUnitsAndPlainNumbers) {
  using U = DurationUnit;
  EXPECT_EQ(parse_duration("500ms", U::kSeconds), milliseconds(500));
  EXPECT_EQ(parse_duration("2s", U::kSeconds), milliseconds(2000));
  EXPECT_EQ(parse_duration("5m", U::kSeconds), milliseconds(300000));
  EXPECT_EQ(parse_duration("1h", U::kSeconds), milliseconds(3600000));
  EXPECT_EQ(parse_duration(" 1.5s ", U::kSeconds), milliseconds(1500));
  EXPECT_EQ(parse_duration("0.25h", U::kSeconds), milliseconds(900000));
  EXPECT_EQ(parse_duration(".5s", U::kSeconds), milliseconds(500));
  EXPECT_EQ(parse_duration("2 s", U::kSeconds), milliseconds(2000));
  EXPECT_EQ(parse_duration("0", U::kSeconds), milliseconds(0));
  // A plain number keeps the key's own unit.
  EXPECT_EQ(parse_duration("2", U::kSeconds), milliseconds(2000));
  EXPECT_EQ(parse_duration("0.5", U::kSeconds), milliseconds(500));
  EXPECT_EQ(parse_duration("2000", U::kMilliseconds), milliseconds(2000));
  EXPECT_EQ(parse_duration("2s", U::kMilliseconds), milliseconds(2000));
  // The longest span: a year (and a day).
  EXPECT_EQ(parse_duration("8784h", U::kSeconds), milliseconds(8784LL * 3600 * 1000));
}

TEST(Durations, RefuseWhatIsNotADuration) {
  const std::pair<const char*, const char*> bad[] = {
      {"5 parsecs", "unknown unit 'parsecs'"},
      {"-1s", "not a non-negative number"},
      {"+1s", "not a non-negative number"},
      {"0.5.5s", "unknown unit '.5s'"},
      {"", "not a non-negative number"},
      {"s", "not a non-negative number"},
      {"1.s", "no digits after '.'"},
      {"2S", "unknown unit 'S'"},
      {"1e3ms", "unknown unit 'e3ms'"},
      {"0.0001s", "not a whole number of milliseconds"},
      {"1.5ms", "not a whole number of milliseconds"},
      {"1.0000000001s", "more than 9 decimals"},
      {"8785h", "more than a year"},
      {"99999999999999999999999", "more than a year"},
      {"99999999999999999999999ms", "more than a year"},
  };
  for (auto [text, why] : bad) {
    std::string reason;
    EXPECT_FALSE(parse_duration(text, DurationUnit::kSeconds, &reason)) << text;
    EXPECT_EQ(reason, why) << text;
  }
}

TEST(Durations, Format) {
  EXPECT_EQ(format_duration(milliseconds(100)), "100ms");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(milliseconds(2000)), "2s");
  EXPECT_EQ(format_duration(milliseconds(90000)), "90s");
  EXPECT_EQ(format_duration(milliseconds(300000)), "5m");
  EXPECT_EQ(format_duration(milliseconds(86400000)), "24h");
  EXPECT_EQ(format_duration(milliseconds(0)), "0s");
}

// Every duration key of every table: a value with a unit is read in the key's own unit, a plain
// number means what it always meant.
TEST(Durations, KeysReadInTheirOwnUnit) {
  Config c = load(
      "[flowd]\nplugins = np_api, netlink, netflow\nbackends = udp_firefly\nflow_map_timeout = 1m\n"
      "[plugin.np_api]\npartial_timeout_ms = 2s\n"
      "[plugin.netlink]\nexperiment = 1\ninterval = 500ms\n"
      "[plugin.netflow]\ntemplate_timeout = 30m\nidle_timeout = 90\n"
      "[backend.udp_firefly]\nstun_timeout_ms = 1.5s\nongoing_interval = 1m\n");
  EXPECT_EQ(c.core.get_int("flow_map_timeout"), 60);
  EXPECT_EQ(c.plugins[0].section.get_int("partial_timeout_ms"), 2000);
  EXPECT_EQ(c.plugins[1].section.get_duration("interval"), milliseconds(500));
  EXPECT_EQ(c.plugins[2].section.get_int("template_timeout"), 1800);
  EXPECT_EQ(c.plugins[2].section.get_int("idle_timeout"), 90);
  EXPECT_EQ(c.backends[0].section.get_int("stun_timeout_ms"), 1500);
  EXPECT_EQ(c.backends[0].section.get_int("ongoing_interval"), 60);
  // Defaults are plain numbers in the key's unit.
  Config d = load("[flowd]\nplugins = netstat, iperf\n[plugin.netstat]\nexperiment = 1\n");
  EXPECT_EQ(d.plugins[0].section.get_duration("interval"), milliseconds(2000));
  EXPECT_EQ(d.plugins[1].section.get_duration("interval"), milliseconds(2000));
  EXPECT_EQ(d.core.get_int("flow_map_timeout"), 5);
}

TEST(Durations, RangeAndResolutionChecks) {
  struct Case {
    const char* section;
    const char* line;
    const char* why;
  };
  const Case cases[] = {
      {"plugin.netlink", "interval = 99ms", "out of range"},
      {"plugin.netlink", "interval = 0", "out of range"},
      {"plugin.netlink", "interval = 61m", "out of range"},
      {"plugin.netlink", "interval = 5 parsecs", "unknown unit 'parsecs'"},
      {"plugin.netlink", "interval = -1s", "not a non-negative number"},
      {"plugin.netlink", "interval = 0.5.5s", "unknown unit '.5s'"},
      {"plugin.netlink", "interval = 99999999999999999999h", "more than a year"},
      {"flowd", "flow_map_timeout = 1500ms", "not a whole number of seconds"},
      {"flowd", "flow_map_timeout = 0.5", "not a whole number of seconds"},
      {"flowd", "flow_map_timeout = 6m", "out of range"},
      {"plugin.netflow", "idle_timeout = 999ms", "not a whole number of seconds"},
      {"backend.udp_firefly", "stun_timeout_ms = 9ms", "out of range"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.line);
    std::string text = "[flowd]\nplugins = netlink, netflow\n[plugin.netlink]\nexperiment = 1\n";
    text += std::string("[") + c.section + "]\n" + c.line + "\n";
    auto e = config_error(text);
    expect_contains(e, kPath);
    expect_contains(e, std::string("[") + c.section + "] " +
                           std::string(c.line).substr(0, std::string(c.line).find(' ')));
    expect_contains(e, std::string("got \"") +
                           (std::string(c.line).substr(std::string(c.line).find('=') + 2)) + "\"");
    expect_contains(e, std::string("(") + c.why + ")");
    expect_contains(e, "such as 500ms, 2s, 5m or 1h");
  }
  EXPECT_EQ(
      config_error(
          "[flowd]\nplugins = netlink\n[plugin.netlink]\nexperiment = 1\ninterval = 5 parsecs\n"),
      std::string(kPath) +
          ": [plugin.netlink] interval: expected a duration 100ms..1h; a plain number is seconds, "
          "got "
          "\"5 parsecs\" (unknown unit 'parsecs'); a duration is a number with ms, s, m or h, such "
          "as "
          "500ms, 2s, 5m or 1h");
}

// A prefix key (KeySpec::prefix: the kafka backend's `librdkafka.`) takes every longer key under
// it, keeps it as written, prints it back, and leaves other unknown keys refused.
TEST(Config, PrefixKeysPassLibraryPropertiesThrough) {
  Config c = load(
      "[flowd]\nplugins = np_api\nbackends = kafka\n[backend.kafka]\nbrokers = k1:9092, k2:9092\n"
      "librdkafka.security.protocol = SASL_SSL\nlibrdkafka.sasl.mechanism = PLAIN\n");
  const BackendConfig* k = find_backend_config(c, "kafka");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->section.with_prefix("librdkafka."),
            (std::map<std::string, std::string>{{"sasl.mechanism", "PLAIN"},
                                                {"security.protocol", "SASL_SSL"}}));
  const std::string printed = print_config(c);
  expect_contains(printed, "librdkafka.security.protocol = SASL_SSL\n");
  expect_contains(printed, "librdkafka.sasl.mechanism = PLAIN\n");
  EXPECT_EQ(printed.find("librdkafka. ="), std::string::npos) << printed;
  // The printed configuration reads back to the same section.
  Config again = validate_config(parse_ini(printed, kPath), component_table());
  EXPECT_EQ(find_backend_config(again, "kafka")->section, k->section);
  // Only keys longer than the prefix; other unknown keys are still refused.
  expect_contains(config_error("[flowd]\nplugins = np_api\nbackends = kafka\n[backend.kafka]\n"
                               "brokers = k:1\nlibrdkafka. = x\n"),
                  "'librdkafka.' needs a name after it (librdkafka.<name> = value)");
  expect_contains(config_error("[flowd]\nplugins = np_api\nbackends = kafka\n[backend.kafka]\n"
                               "brokers = k:1\nlibrdkafk.acks = 1\n"),
                  "unknown key 'librdkafk.acks'");
  expect_contains(
      config_error("[flowd]\nplugins = np_api\nbackends = kafka\n[backend.kafka]\n"
                   "brokers = k:1\nlibrdkafka.client.id = a\nlibrdkafka.client.id = b\n"),
      "librdkafka.client.id is set more than once");
}

}  // namespace
}  // namespace flowd
