// SPDX-License-Identifier: Apache-2.0
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <charconv>

#include <array>
#include <cstdio>
#include <iostream>

#include "app/analyze_cli.hpp"
#include "app/cli_errors.hpp"
#include "app/components.hpp"
#include "app/decode_cli.hpp"
#include "app/label_cli.hpp"
#include "app/status_cli.hpp"
#include "core/config_check.hpp"
#include "core/config_loader.hpp"
#include "core/daemon.hpp"

namespace {
// analyze's --max-open and --buffer: 1 and up (0 or a negative number was taken silently), and at
// most this many, so that a typo cannot ask for unbounded memory.
constexpr std::size_t kMaxCount = 100'000'000;
}  // namespace

int main(int argc, char** argv) {
  const flowd::ComponentTable& components = flowd::component_table();
  CLI::App app{"flowd - Scitags flow and packet marking service (C++)", "flowd"};
  app.set_version_flag("--version", std::string("flowd-cpp ") + FLOWD_VERSION);
  // An option given twice takes its last value, as most tools do (CLI11's default refused it with
  // "takes at most 1 argument(s) (), got 2"); the subcommands inherit this.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string config_path = "/etc/flowd/flowd.cfg";
  std::string convert;
  bool debug = false, foreground = false, check = false, print = false;
  app.add_option("-c,--config", config_path, "configuration file (INI or legacy Python flowd.cfg)")
      ->capture_default_str();
  app.add_flag("-d,--debug", debug, "log at debug level (one line per flow event)");
  app.add_flag("-f,--fg", foreground,
               "accepted for compatibility; flowd always runs in the foreground");
  app.add_flag("--check-config", check, "validate the configuration and exit (0 valid, 2 invalid)");
  app.add_flag("--print-config", print,
               "print the effective configuration, defaults filled in, and exit");
  app.add_option("--convert-config", convert,
                 "print the INI equivalent of a legacy flowd.cfg and exit");
  bool reference = false;
  // The label verbs are commands of their own, so that an error names "flowd label decode" and
  // prints its usage; label_args is the verb and its values, as run_label_command takes them.
  std::vector<std::string> label_args;
  std::array<std::string, 2> label_values;
  auto* label =
      app.add_subcommand("label", "encode or decode a Scitags IPv6 flow label or scitag integer")
          ->require_subcommand(1)
          ->footer(
              "  flowd label encode EXPERIMENT ACTIVITY   (numbers or registry names)\n"
              "  flowd label decode LABEL                 (decimal or 0x hex)\n"
              "  flowd label scitag SCITAG                (experiment << 6 | activity, as FTS,\n"
              "                                            gfal and XRootD take it)");
  auto label_verb = [&](const char* verb, const char* help,
                        std::vector<std::pair<const char*, const char*>> args) {
    auto* sub = label->add_subcommand(verb, help);
    for (std::size_t i = 0; i < args.size(); ++i)
      sub->add_option(args[i].first, label_values[i], args[i].second)->required();
    sub->callback([&label_args, &label_values, verb, n = args.size()] {
      label_args.assign({std::string(verb)});
      label_args.insert(label_args.end(), label_values.begin(),
                        label_values.begin() + static_cast<std::ptrdiff_t>(n));
    });
  };
  label_verb("encode", "print the flow label of an experiment and activity",
             {{"EXPERIMENT", "a number or a registry name"},
              {"ACTIVITY", "a number or the experiment's activity name"}});
  label_verb("decode", "print the experiment and activity of a flow label",
             {{"LABEL", "a 20-bit flow label, decimal or 0x hex"}});
  label_verb("scitag", "print the experiment, activity and flow label of a scitag",
             {{"SCITAG", "experiment << 6 | activity, 0..32767, decimal or 0x hex"}});
  std::vector<std::string> decode_args;
  auto* decode = app.add_subcommand(
      "decode", "decode NetFlow/IPFIX and sFlow exports offline, one JSON line per record");
  bool decode_hex = false;
  decode->add_flag("--hex", decode_hex,
                   "input is hex payloads, one per line (else a pcap or pcapng file)");
  bool decode_sampling = false;
  decode->add_flag("--apply-sampling", decode_sampling,
                   "multiply packet and octet counters by the exporter's sampling rate (as "
                   "apply_sampling = yes)");
  decode
      ->add_option("FILE", decode_args,
                   "a pcap/pcapng capture, or hex lines with --hex; - for "
                   "standard input")
      ->required();
  flowd::AnalyzeOptions analyze_opts;
  auto* analyze =
      app.add_subcommand("analyze", "one line per connection from flow dumps and export captures")
          ->footer(
              "  FILE: a JSON dump (flowd decode, netflow dump =), plain or gzip, or - for "
              "standard input;\n"
              "        or a pcap/pcapng capture of NetFlow/IPFIX exports. See the README.");
  analyze
      ->add_option("FILE", analyze_opts.files,
                   "JSON dumps (plain or gzip) and export captures; - for standard input")
      ->required();
  analyze->add_flag("--json", analyze_opts.json,
                    "one JSON object per connection (keys in the README)");
  analyze
      ->add_option("--sort", analyze_opts.sort,
                   "start (default), bytes (largest first) or none (closing order)")
      ->capture_default_str()
      // Checked while parsing, so that the error comes with the command's usage.
      ->check(CLI::Validator(
          [](std::string& v) {
            return v == "start" || v == "bytes" || v == "none"
                       ? std::string()
                       : "must be start, bytes or none, not '" + v + "'";
          },
          ""));
  analyze
      ->add_option("--window", analyze_opts.window_seconds,
                   "seconds within which records of one connection are paired, and after which an "
                   "idle one is closed")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            double d = -1;
            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
            const bool ok =
                ec == std::errc() && p == v.data() + v.size() && d >= 0 && d <= 86400.0 * 365;
            return ok ? std::string() : "'" + v + "' is not a number of seconds from 0 to 31536000";
          },
          ""));
  analyze
      ->add_option("--max-open", analyze_opts.max_open,
                   "open connections at most; beyond, the oldest is closed early")
      ->capture_default_str()
      ->type_name("N")
      ->check(CLI::Validator(
          [](std::string& v) { return flowd::check_count(v, "open connections", kMaxCount); }, ""));
  analyze->add_option("--buffer", analyze_opts.buffer, "connections held for --sort (memory bound)")
      ->capture_default_str()
      ->type_name("N")
      ->check(CLI::Validator(
          [](std::string& v) { return flowd::check_count(v, "connections held", kMaxCount); }, ""));
  analyze->add_flag("--resolve", analyze_opts.resolve,
                    "add reverse-DNS names (cached; off by default)");
  analyze
      ->add_option("--resolve-timeout", analyze_opts.resolve_timeout_ms,
                   "milliseconds to wait for one name")
      ->capture_default_str();
  analyze->add_flag("--apply-sampling", analyze_opts.apply_sampling,
                    "captures: multiply counters by the exporter's sampling rate");
  analyze->add_option(
      "--registry", analyze_opts.registry,
      "Scitags registry (api.json) for experiment/activity names; default: the built-in snapshot");
  flowd::StatusOptions status_opts;
  auto add_api_options = [&](CLI::App* sub) {
    sub->add_option("-c,--config", config_path,
                    "configuration file whose [plugin.api] says where flowd listens");
    sub->add_flag("--json", status_opts.json, "print the API's JSON as it came");
    sub->add_option("--socket", status_opts.socket,
                    "the API's unix socket (default: [plugin.api] socket of -c's file)")
        ->type_name("PATH")
        ->check(
            CLI::Validator([](std::string& v) { return flowd::check_api_option(v, "PATH"); }, ""));
    sub->add_option("--address", status_opts.address,
                    "the API's TCP address host[:port] (default: from -c's file)")
        ->type_name("HOST[:PORT]")
        ->check(CLI::Validator(
            [](std::string& v) { return flowd::check_api_option(v, "HOST[:PORT]"); }, ""));
  };
  auto* status = app.add_subcommand(
      "status", "what the running flowd runs and does (its api plugin's GET /v1/status)");
  add_api_options(status);
  auto* flows = app.add_subcommand(
      "flows", "the active flows of the running flowd, as a table (GET /v1/flows)");
  add_api_options(flows);
  flows->add_option("--limit", status_opts.limit, "show at most this many flows")
      ->capture_default_str()
      ->type_name("N")
      ->check(CLI::Validator([](std::string& v) { return flowd::check_limit(v); }, ""));
  app.add_flag("--config-reference", reference,
               "print every configuration key as Markdown tables and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << flowd::parse_failure(app, e);
    return 2;
  }

  if (*label) {
    const flowd::LabelOutput r = flowd::run_label_command(label_args);
    std::fputs(r.out.c_str(), stdout);
    std::fputs(r.err.c_str(), stderr);
    if (r.code == 2) std::fputs(flowd::usage_of(app).c_str(), stderr);
    return r.code;
  }
  if (*decode) {
    if (decode_hex) decode_args.insert(decode_args.begin(), "--hex");
    if (decode_sampling) decode_args.insert(decode_args.begin(), "--apply-sampling");
    return flowd::decode_command(decode_args);
  }
  if (*analyze) return flowd::analyze_command(analyze_opts);
  if (*status || *flows) {
    status_opts.config_path = config_path;
    return *status ? flowd::status_command(status_opts, components)
                   : flowd::flows_command(status_opts, components);
  }
  if (reference) {
    std::cout << flowd::config_reference_markdown(components);
    return 0;
  }
  try {
    if (!convert.empty()) {
      auto raw = flowd::read_config_file(convert, components);
      if (!raw.legacy) std::cerr << convert << " is already an INI file; printing it as read\n";
      flowd::validate_config(raw, components);
      for (const auto& w : raw.warnings) std::cerr << "warning: " << w << "\n";
      std::cout << flowd::to_ini(raw);
      return 0;
    }
    if (check || print) {
      auto c = flowd::load_config(config_path, components);
      for (const auto& w : c.warnings) std::cerr << "warning: " << w << "\n";
      if (print) std::cout << flowd::print_config(c);
      if (check) {
        std::string names = flowd::check_components(c);
        std::cerr << config_path
                  << ": configuration is valid (components built; registry names from " << names
                  << ")\n";
      }
      return 0;
    }
  } catch (const flowd::ConfigError& e) {
    std::cerr << "flowd: " << e.what() << "\n";
    return 2;
  }
  return flowd::run_daemon({config_path, debug}, components);
}
