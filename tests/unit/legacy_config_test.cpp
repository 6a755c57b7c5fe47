// SPDX-License-Identifier: Apache-2.0
// Python flowd.cfg files: looks_legacy, parse_legacy, to_ini, and validation of the result.
#include <gtest/gtest.h>

#include "test_files.hpp"

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app/components.hpp"
#include "backends/udp_firefly/udp_firefly_config.hpp"
#include "core/config_loader.hpp"

namespace flowd {
namespace {

constexpr const char* kPath = "/etc/flowd/flowd.cfg";

using flowd::test::read_text_file;

void expect_contains(const std::string& haystack, std::string_view needle) {
  EXPECT_NE(haystack.find(needle), std::string::npos) << "'" << needle << "' not in: " << haystack;
}

// The entries of one raw section, or nullptr if the section is absent.
const RawSection* find_section(const RawConfig& raw, std::string_view name) {
  for (const auto& s : raw.sections)
    if (s.name == name) return &s;
  return nullptr;
}

using Entries = std::vector<std::pair<std::string, std::string>>;

Entries entries_of(const RawConfig& raw, std::string_view name) {
  const RawSection* s = find_section(raw, name);
  return s ? s->entries : Entries{};
}

std::string all_warnings(const RawConfig& raw) {
  std::string out;
  for (const auto& w : raw.warnings) out += w + "\n";
  return out;
}

// The shipped etc/flowd.cfg of the Python original (comments as there).
constexpr const char* kShippedOriginal = R"(# flowd configuration

PLUGIN='netstat'
BACKEND='udp_firefly'
FLOW_MAP_API='https://www.scitags.org/api.json'

# experiment and activity to use for netstat plugin
#NETSTAT_EXPERIMENT='<exp>'
#NETSTAT_ACTIVITY='<act>'
#NETSTAT_INTERNAL_NETWORKS=('192.168.0.0/16', )

#IP_DISCOVERY_ENABLED = False
#UDP_FIREFLY_DST='<host>'
#UDP_FIREFLY_IP4_SRC=''
#UDP_FIREFLY_IP6_SRC=''
)";

// The same file, edited the way a site running the named pipe would.
constexpr const char* kSiteConfig = R"(# flowd configuration
PLUGIN='np_api'   # the named pipe
BACKEND='udp_firefly,prometheus'
FLOW_MAP_API="https://www.scitags.org/api.json"  # registry

NETSTAT_EXPERIMENT='atlas'
NETSTAT_ACTIVITY='default'
NETSTAT_INTERNAL_NETWORKS=('192.168.0.0/16', )

IP_DISCOVERY_ENABLED = False
UDP_FIREFLY_NETLINK = True
UDP_FIREFLY_DST='collector.example.org'
UDP_FIREFLY_IP4_SRC=''
UDP_FIREFLY_IP6_SRC='2001:db8::1'
NP_API_FILE='/run/flowd/np'
UDP_FIREFLY_PORT=10515
PROMETHEUS_SRV_PORT=9100
)";

// The ConfigError message of parse_legacy(`text`), or "" if it parses.
std::string legacy_error_text(std::string_view text) {
  try {
    parse_legacy(text, kPath, component_table());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// Detection.

TEST(LooksLegacy, Detection) {
  EXPECT_TRUE(looks_legacy(kShippedOriginal));
  EXPECT_TRUE(looks_legacy(kSiteConfig));
  EXPECT_TRUE(looks_legacy(read_text_file(FLOWD_FIXTURES "/firefly/flowd-py-test.cfg")));
  EXPECT_TRUE(looks_legacy("# comment\n\nPLUGIN = 'np_api'\n"));
  EXPECT_FALSE(looks_legacy("[flowd]\nplugins = np_api\n"));
  EXPECT_FALSE(looks_legacy("; comment\n# comment\n[flowd]\nPLUGIN = np_api\n"));
  EXPECT_FALSE(looks_legacy(""));
  EXPECT_FALSE(looks_legacy("# only comments\n"));
  EXPECT_FALSE(looks_legacy("plugins = np_api\n"));  // lower case: an INI key outside a section
}

TEST(LooksLegacy, ParseConfigTextDispatches) {
  RawConfig legacy = parse_config_text(kSiteConfig, kPath, component_table());
  EXPECT_TRUE(legacy.legacy);
  RawConfig ini = parse_config_text("[flowd]\nplugins = np_api\n", kPath, component_table());
  EXPECT_FALSE(ini.legacy);
}

// ---------------------------------------------------------------------------------------------
// The fixture and the shipped file.

TEST(ParseLegacy, FixtureConfigOfThePythonRun) {
  std::string path = FLOWD_FIXTURES "/firefly/flowd-py-test.cfg";
  RawConfig raw = parse_legacy(read_text_file(path), path, component_table());
  EXPECT_TRUE(raw.legacy);
  EXPECT_EQ(raw.path, path);
  EXPECT_TRUE(raw.warnings.empty()) << all_warnings(raw);
  EXPECT_EQ(entries_of(raw, "flowd"),
            (Entries{{"plugins", "np_api"},
                     {"backends", "udp_firefly"},
                     {"flow_map_api", "http://127.0.0.1:8765/api.json"}}));
  EXPECT_EQ(find_section(raw, "backend.prometheus"), nullptr);

  Config c = validate_config(raw, component_table());
  EXPECT_TRUE(c.legacy);
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].info->name, "np_api");
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_EQ(c.backends[0].info->name, "udp_firefly");
  EXPECT_EQ(c.core.get("flow_map_api"), "http://127.0.0.1:8765/api.json");
  EXPECT_EQ(c.backends[0].section.get_int("port"), 10514);
  expect_contains(c.ini_equivalent, "[flowd]\nplugins = np_api\nbackends = udp_firefly\n");
}

TEST(ParseLegacy, ShippedFileSelectsNetstat) {
  RawConfig raw = parse_legacy(kShippedOriginal, kPath, component_table());
  EXPECT_TRUE(raw.warnings.empty()) << all_warnings(raw);  // everything else is commented out
  EXPECT_EQ(entries_of(raw, "flowd"),
            (Entries{{"plugins", "netstat"},
                     {"backends", "udp_firefly"},
                     {"flow_map_api", "https://www.scitags.org/api.json"}}));
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].info->name, "netstat");
  // As in the original, the experiment is checked when the plugin is created (it is unset here).
  EXPECT_EQ(c.plugins[0].section.get("experiment"), "");
}

// ---------------------------------------------------------------------------------------------
// A full site file.

TEST(ParseLegacy, SiteConfigMapsEveryKey) {
  RawConfig raw = parse_legacy(kSiteConfig, kPath, component_table());
  EXPECT_TRUE(raw.legacy);
  EXPECT_EQ(entries_of(raw, "flowd"),
            (Entries{{"plugins", "np_api"},
                     {"backends", "udp_firefly,prometheus"},
                     {"flow_map_api", "https://www.scitags.org/api.json"}}));
  EXPECT_EQ(entries_of(raw, "plugin.np_api"), (Entries{{"path", "/run/flowd/np"}}));
  // UDP_FIREFLY_IP4_SRC='' means unset and is left out.
  EXPECT_EQ(entries_of(raw, "backend.udp_firefly"), (Entries{{"ip_discovery", "no"},
                                                             {"netlink", "yes"},
                                                             {"collector", "collector.example.org"},
                                                             {"ip6_src", "2001:db8::1"},
                                                             {"port", "10515"}}));
  EXPECT_EQ(entries_of(raw, "backend.prometheus"), (Entries{{"listen", "0.0.0.0:9100"}}));
  EXPECT_EQ(entries_of(raw, "plugin.netstat"), (Entries{{"experiment", "atlas"},
                                                        {"activity", "default"},
                                                        {"internal_networks", "192.168.0.0/16"}}));

  // Every legacy key maps to a component of this build: no warning at all.
  EXPECT_TRUE(raw.warnings.empty()) << all_warnings(raw);
}

TEST(ParseLegacy, SiteConfigValidates) {
  Config c =
      validate_config(parse_legacy(kSiteConfig, kPath, component_table()), component_table());
  EXPECT_TRUE(c.legacy);
  // The NETSTAT_* keys of a file running np_api: kept, with a note that netstat does not run.
  EXPECT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings.back().find("'netstat' is not in [flowd] plugins"), std::string::npos)
      << c.warnings.back();
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].section.get("path"), "/run/flowd/np");
  ASSERT_EQ(c.backends.size(), 2u);
  EXPECT_EQ(c.backends[0].info->name, "udp_firefly");
  const Section& uf = c.backends[0].section;
  EXPECT_EQ(uf.get_int("port"), 10515);
  EXPECT_EQ(uf.get("collector"), "collector.example.org");
  // The legacy single host is a list of one collector, on the legacy port (issue 14).
  const auto typed = udp_firefly::UdpFireflyConfig::from(uf);
  ASSERT_EQ(typed.collectors.size(), 1u);
  EXPECT_EQ(typed.collectors[0].to_string(), "collector.example.org:10515");
  EXPECT_EQ(uf.get("ip4_src"), "");
  EXPECT_FALSE(uf.is_set("ip4_src"));
  EXPECT_EQ(uf.get("ip6_src"), "2001:db8::1");
  EXPECT_EQ(c.backends[1].info->name, "prometheus");
  EXPECT_EQ(c.backends[1].section.get("listen"), "0.0.0.0:9100");
  EXPECT_FALSE(c.ini_equivalent.empty());
}

TEST(ParseLegacy, PrometheusDefaultsToPort9000OnEveryAddress) {
  RawConfig raw = parse_legacy("PLUGIN='np_api'\nBACKEND='prometheus, udp-firefly'\n", kPath,
                               component_table());
  EXPECT_EQ(entries_of(raw, "backend.prometheus"), (Entries{{"listen", "0.0.0.0:9000"}}));
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.backends.size(), 2u);
  EXPECT_EQ(c.backends[0].section.get("listen"), "0.0.0.0:9000");
  EXPECT_EQ(c.backends[1].info->name, "udp_firefly");
  // Without prometheus there is no [backend.prometheus].
  RawConfig plain =
      parse_legacy("PLUGIN='np_api'\nBACKEND='udp_firefly'\n", kPath, component_table());
  EXPECT_EQ(find_section(plain, "backend.prometheus"), nullptr);
}

TEST(ParseLegacy, PrometheusSsPathIsIgnoredWithAWarning) {
  RawConfig raw = parse_legacy("PLUGIN='np_api'\nPROMETHEUS_SS_PATH='/usr/sbin/ss'\n", kPath,
                               component_table());
  ASSERT_EQ(raw.warnings.size(), 1u);
  expect_contains(raw.warnings[0], "PROMETHEUS_SS_PATH is ignored");
}

TEST(ParseLegacy, SettingsOnlyConstantsAreAccepted) {
  RawConfig raw = parse_legacy(
      "PLUGIN='np_api'\nNP_API_FILE='/tmp/np'\nUDP_FIREFLY_PORT=1234\nWORK_DIR='/tmp/flowd'\n"
      "NETSTAT_TIMEOUT=2\nNETLINK_TIMEOUT=2\n",
      kPath, component_table());
  EXPECT_EQ(entries_of(raw, "plugin.np_api"), (Entries{{"path", "/tmp/np"}}));
  EXPECT_EQ(entries_of(raw, "backend.udp_firefly"), (Entries{{"port", "1234"}}));
  Config c = validate_config(raw, component_table());
  EXPECT_EQ(c.core.get("work_dir"), "/tmp/flowd");
  EXPECT_EQ(c.backends.at(0).section.get_int("port"), 1234);
  EXPECT_EQ(entries_of(raw, "plugin.netstat"), (Entries{{"interval", "2"}}));
  EXPECT_EQ(entries_of(raw, "plugin.netlink"), (Entries{{"interval", "2"}}));
}

// ---------------------------------------------------------------------------------------------
// Python syntax.

TEST(ParseLegacy, ValueSyntax) {
  RawConfig raw = parse_legacy(
      "PLUGIN = \"np_api\"\n"
      "BACKEND = ['udp_firefly', \"prometheus\",]  # a list, trailing comma\n"
      "FLOW_MAP_API = 'https://example.org/api.json#frag'   # '#' inside a string stays\n"
      "UDP_FIREFLY_PORT = 10_514\n"
      "UDP_FIREFLY_DST = None\n"
      "UDP_FIREFLY_NETLINK = False\n"
      "\tNP_API_FILE='/run/it\\'s'\n",
      kPath, component_table());
  EXPECT_EQ(entries_of(raw, "flowd"),
            (Entries{{"plugins", "np_api"},
                     {"backends", "udp_firefly, prometheus"},
                     {"flow_map_api", "https://example.org/api.json#frag"}}));
  EXPECT_EQ(entries_of(raw, "backend.udp_firefly"),
            (Entries{{"port", "10514"}, {"netlink", "no"}}));
  EXPECT_EQ(entries_of(raw, "plugin.np_api"), (Entries{{"path", "/run/it's"}}));
}

TEST(ParseLegacy, IperfReadsTheNetstatInternalNetworks) {
  RawConfig raw = parse_legacy("PLUGIN='iperf'\nNETSTAT_INTERNAL_NETWORKS=('10.0.0.0/8', )\n",
                               kPath, component_table());
  EXPECT_EQ(entries_of(raw, "plugin.iperf"), (Entries{{"internal_networks", "10.0.0.0/8"}}));
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].section.get_list("internal_networks"),
            std::vector<std::string>{"10.0.0.0/8"});
}

// UDP_FIREFLY_NETLINK asked the original for kernel look-ups (flowd: netlink = yes); the
// undocumented UDP_FIREFLY_WITH_NETLINK only copied the flow's own netlink data, which flowd's
// flows do not carry: it must not turn look-ups on.
TEST(ParseLegacy, WithNetlinkIsIgnoredAndStartsNoLookups) {
  RawConfig raw =
      parse_legacy("PLUGIN='netlink'\nUDP_FIREFLY_WITH_NETLINK=True\nNETLINK_EXPERIMENT='cms'\n",
                   kPath, component_table());
  ASSERT_EQ(raw.warnings.size(), 1u) << all_warnings(raw);
  expect_contains(raw.warnings[0], "UDP_FIREFLY_WITH_NETLINK is ignored");
  expect_contains(raw.warnings[0], "flow's own netlink data");
  EXPECT_EQ(find_section(raw, "backend.udp_firefly"), nullptr);
  EXPECT_EQ(entries_of(raw, "plugin.netlink"), (Entries{{"experiment", "cms"}}));
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.backends.size(), 1u);
  EXPECT_FALSE(c.backends[0].section.get_bool("netlink"));
  // The documented key keeps its meaning.
  RawConfig lookups =
      parse_legacy("PLUGIN='np_api'\nUDP_FIREFLY_NETLINK=True\n", kPath, component_table());
  EXPECT_EQ(entries_of(lookups, "backend.udp_firefly"), (Entries{{"netlink", "yes"}}));
}

// The original README's IPERF_FLOW_ID: a list of (experiment, activity) tuples.
TEST(ParseLegacy, IperfFlowIdListOfTuples) {
  RawConfig raw =
      parse_legacy("PLUGIN='iperf'\nIPERF_FLOW_ID = [(2, 9), (3, 3)]\n", kPath, component_table());
  EXPECT_TRUE(raw.warnings.empty()) << all_warnings(raw);
  EXPECT_EQ(entries_of(raw, "plugin.iperf"), (Entries{{"flow_ids", "2:9, 3:3"}}));
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].section.get_list("flow_ids"), (std::vector<std::string>{"2:9", "3:3"}));
  // Tuples of names, over several lines, with trailing commas.
  RawConfig names = parse_legacy(
      "PLUGIN='iperf'\nIPERF_FLOW_ID = (\n  ('atlas', 'default'),\n  ('cms', 'cache',),\n)\n",
      kPath, component_table());
  EXPECT_EQ(entries_of(names, "plugin.iperf"), (Entries{{"flow_ids", "atlas:default, cms:cache"}}));
  // Deeper nesting is not Python a flowd.cfg needs.
  expect_contains(legacy_error_text("PLUGIN='iperf'\nIPERF_FLOW_ID = [((2, 9),)]\n"),
                  "IPERF_FLOW_ID: expected a quoted string");
}

// The original's iperf_rr: ports 5201-5299, its own pairs round-robin.
TEST(ParseLegacy, IperfRrIsTheIperfPortMode) {
  RawConfig raw =
      parse_legacy("PLUGIN='iperf_rr'\nBACKEND='udp_firefly'\n", kPath, component_table());
  EXPECT_TRUE(raw.warnings.empty()) << all_warnings(raw);
  EXPECT_EQ(entries_of(raw, "flowd"), (Entries{{"plugins", "iperf"}, {"backends", "udp_firefly"}}));
  EXPECT_EQ(entries_of(raw, "plugin.iperf"),
            (Entries{{"ports", "5201-5299"},
                     {"flow_ids", "2:19, 2:19, 3:3, 3:3, 4:3, 4:3, 5:10, 5:10"}}));
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].info->name, "iperf");
  expect_contains(c.ini_equivalent, "[plugin.iperf]\nports = 5201-5299\n");
  // IPERF_FLOW_ID replaces the built-in pairs.
  RawConfig own =
      parse_legacy("PLUGIN='iperf_rr'\nIPERF_FLOW_ID=[(2, 9)]\n", kPath, component_table());
  EXPECT_EQ(entries_of(own, "plugin.iperf"),
            (Entries{{"flow_ids", "2:9"}, {"ports", "5201-5299"}}));
  expect_contains(legacy_error_text("PLUGIN='iperf, iperf_rr'\n"), "both iperf and iperf_rr");
}

TEST(ParseLegacy, MultiLineLists) {
  RawConfig raw = parse_legacy(
      "PLUGIN='np_api'\n"
      "BACKEND = (\n"
      "    'udp_firefly',   # fireflies\n"
      "\n"
      "    # the exporter\n"
      "    'prometheus',\n"
      ")\n"
      "NETSTAT_INTERNAL_NETWORKS = [\n"
      "  '192.168.0.0/16',\n"
      "  '10.0.0.0/8'\n"
      "]\n"
      "FLOW_MAP_API = \\\n"
      "    'https://www.scitags.org/api.json'\n",
      kPath, component_table());
  EXPECT_EQ(entries_of(raw, "flowd"),
            (Entries{{"plugins", "np_api"},
                     {"backends", "udp_firefly, prometheus"},
                     {"flow_map_api", "https://www.scitags.org/api.json"}}));
  EXPECT_EQ(entries_of(raw, "plugin.netstat"),
            (Entries{{"internal_networks", "192.168.0.0/16, 10.0.0.0/8"}}));
  Config c = validate_config(raw, component_table());
  EXPECT_EQ(c.backends.size(), 2u);
}

TEST(ParseLegacy, TupleWithOneItem) {
  RawConfig raw =
      parse_legacy("PLUGIN=('np_api', )\nBACKEND=('udp_firefly',)\n", kPath, component_table());
  EXPECT_EQ(entries_of(raw, "flowd"),
            (Entries{{"plugins", "np_api"}, {"backends", "udp_firefly"}}));
  EXPECT_NO_THROW(validate_config(raw, component_table()));
}

TEST(ParseLegacy, UnknownKeyWarnsWithSuggestion) {
  RawConfig raw = parse_legacy("PLUGIN='np_api'\nUDP_FIREFLY_PROT=10514\nCOMPLETELY_UNRELATED=1\n",
                               kPath, component_table());
  ASSERT_EQ(raw.warnings.size(), 2u) << all_warnings(raw);
  expect_contains(raw.warnings[0], kPath);
  expect_contains(raw.warnings[0], "unknown key UDP_FIREFLY_PROT ignored");
  expect_contains(raw.warnings[0], "did you mean UDP_FIREFLY_PORT?");
  expect_contains(raw.warnings[1], "unknown key COMPLETELY_UNRELATED ignored");
  EXPECT_EQ(raw.warnings[1].find("did you mean"), std::string::npos) << raw.warnings[1];
  // Warnings carry through validation.
  Config c = validate_config(raw, component_table());
  EXPECT_EQ(c.warnings, raw.warnings);
}

// The ConfigError message for `text`; fails the test if parsing succeeds.
std::string legacy_error(std::string_view text) {
  try {
    parse_legacy(text, kPath, component_table());
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return {};
}

TEST(ParseLegacy, SyntaxErrorsCarryTheLineNumber) {
  auto e = legacy_error("PLUGIN='np_api'\n# comment\nBACKEND='udp_firefly\nFLOW_MAP_API='x'\n");
  expect_contains(e, std::string(kPath) + ":3:");
  expect_contains(e, "BACKEND: string is not closed");
  expect_contains(e, "legacy Python flowd.cfg syntax");

  e = legacy_error("PLUGIN='np_api'\nBACKEND=('udp_firefly',\n");
  expect_contains(e, "BACKEND: list is not closed with ')'");

  e = legacy_error("PLUGIN='np_api'\n\nBACKEND 'udp_firefly'\n");
  expect_contains(e, std::string(kPath) + ":3:");
  expect_contains(e, "expected '=' after BACKEND");

  e = legacy_error("PLUGIN='np_api' 'extra'\n");
  expect_contains(e, std::string(kPath) + ":1:");
  expect_contains(e, "unexpected text after the value");

  e = legacy_error("PLUGIN=np_api\n");
  expect_contains(e, "expected a quoted string, a number, True/False or a (list)");

  e = legacy_error("PLUGIN=\n");
  expect_contains(e, kPath);

  e = legacy_error("PLUGIN='np_api'\nBACKEND=['a' 'b']\n");
  expect_contains(e, std::string(kPath) + ":2:");
  expect_contains(e, "expected ',' or ']'");

  e = legacy_error("= 'x'\n");
  expect_contains(e, "expected KEY = value");
}

// ---------------------------------------------------------------------------------------------
// to_ini.

TEST(ToIni, ConvertedFileIsEquivalent) {
  RawConfig raw = parse_legacy(kSiteConfig, kPath, component_table());
  std::string ini = to_ini(raw);
  EXPECT_EQ(ini.rfind(std::string("; converted from ") + kPath + "\n", 0), 0u) << ini;
  expect_contains(ini,
                  "\n[flowd]\nplugins = np_api\nbackends = udp_firefly,prometheus\n"
                  "flow_map_api = https://www.scitags.org/api.json\n");
  expect_contains(ini, "\n[plugin.np_api]\npath = /run/flowd/np\n");
  expect_contains(ini,
                  "\n[backend.udp_firefly]\nip_discovery = no\nnetlink = yes\ncollector = "
                  "collector.example.org\n"
                  "ip6_src = 2001:db8::1\nport = 10515\n");
  expect_contains(ini,
                  "\n[plugin.netstat]\nexperiment = atlas\nactivity = default\n"
                  "internal_networks = 192.168.0.0/16\n");
  expect_contains(ini, "\n[backend.prometheus]\nlisten = 0.0.0.0:9100\n");
  EXPECT_FALSE(looks_legacy(ini));

  Config from_legacy = validate_config(raw, component_table());
  Config from_ini = validate_config(parse_ini(ini, kPath), component_table());
  EXPECT_EQ(from_legacy.core, from_ini.core);
  ASSERT_EQ(from_legacy.plugins.size(), from_ini.plugins.size());
  EXPECT_EQ(from_legacy.plugins[0].section, from_ini.plugins[0].section);
  ASSERT_EQ(from_legacy.backends.size(), from_ini.backends.size());
  for (std::size_t i = 0; i < from_ini.backends.size(); ++i) {
    EXPECT_EQ(from_legacy.backends[i].info, from_ini.backends[i].info);
    EXPECT_EQ(from_legacy.backends[i].section, from_ini.backends[i].section);
  }
  EXPECT_EQ(from_legacy.ini_equivalent, ini);
}

// The README's legacy table names every key the code knows, and says what each becomes.
TEST(LegacyKeys, ReadmeTableMatchesTheCode) {
  std::string readme = read_text_file(FLOWD_SOURCE_DIR "/README.md");
  const std::string begin = "<!-- legacy-keys:begin -->\n", end = "<!-- legacy-keys:end -->";
  auto b = readme.find(begin), e = readme.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  std::map<std::string, std::string> rows;  // key -> its whole row
  std::istringstream table(readme.substr(b + begin.size(), e - b - begin.size()));
  for (std::string line; std::getline(table, line);) {
    if (!line.starts_with("| `")) continue;
    auto close = line.find('`', 3);
    ASSERT_NE(close, std::string::npos) << line;
    EXPECT_TRUE(rows.emplace(line.substr(3, close - 3), line).second) << "twice: " << line;
  }
  std::set<std::string> in_code;
  for (const auto& k : legacy_keys(component_table())) {
    in_code.insert(k.name);
    auto row = rows.find(k.name);
    if (row == rows.end()) {
      ADD_FAILURE() << k.name << " is missing from the README's legacy table";
      continue;
    }
    if (k.target.empty())
      expect_contains(row->second, "ignored");
    else
      expect_contains(row->second, "`" + k.target + "`");
  }
  for (const auto& [name, row] : rows)
    EXPECT_TRUE(in_code.contains(name)) << name << " is in the README but not in the code";
}

TEST(ToIni, EmptySectionsAreLeftOut) {
  RawConfig raw;
  raw.path = "x.cfg";
  raw.section("flowd").entries.emplace_back("plugins", "np_api");
  raw.section("plugin.np_api");
  std::string ini = to_ini(raw);
  EXPECT_EQ(ini, "; converted from x.cfg\n\n[flowd]\nplugins = np_api\n");
}

}  // namespace
}  // namespace flowd

namespace flowd {
namespace {

TEST(ParseLegacy, FireflyListenerKeys) {
  RawConfig raw = parse_legacy(
      "PLUGIN='firefly'\nBACKEND='udp_firefly'\nFLOW_MAP_API=''\nFIREFLY_LISTENER_HOST='::'\n"
      "FIREFLY_LISTENER_PORT=10600\nUDP_FIREFLY_DST='collector.example.org'\n",
      "flowd.cfg", component_table());
  EXPECT_TRUE(raw.warnings.empty()) << raw.warnings.front();
  Config c = validate_config(raw, component_table());
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].section.get("host"), "::");
  EXPECT_EQ(c.plugins[0].section.get_int("port"), 10600);
}

}  // namespace
}  // namespace flowd

namespace flowd {
namespace {

// Legacy values are plain numbers: NETLINK_TIMEOUT = 5 is still five seconds between scans.
TEST(ParseLegacy, TimeoutsKeepTheirSeconds) {
  Config c = validate_config(parse_legacy("PLUGIN='netlink,netstat'\nNETLINK_EXPERIMENT=1\nNETSTAT_"
                                          "EXPERIMENT=1\nNETLINK_TIMEOUT=5\nNETSTAT_TIMEOUT=1\n",
                                          "/etc/flowd/flowd.cfg", component_table()),
                             component_table());
  ASSERT_EQ(c.plugins.size(), 2u);
  EXPECT_EQ(c.plugins[0].section.get_duration("interval"), std::chrono::seconds(5));
  EXPECT_EQ(c.plugins[1].section.get_duration("interval"), std::chrono::seconds(1));
}

}  // namespace
}  // namespace flowd
