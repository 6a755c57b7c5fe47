// SPDX-License-Identifier: Apache-2.0
#include "app/cli_errors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <vector>

namespace flowd {
namespace {

// "a, b or c"
std::string one_of(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

std::vector<std::string> command_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::App* sub : cmd.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

// The positional arguments `cmd` takes, as its usage names them: "EXPERIMENT ACTIVITY", "FILE...".
std::string positionals(const CLI::App& cmd) {
  std::string out;
  for (const CLI::Option* o : cmd.get_options()) {
    if (!o->get_positional()) continue;
    if (!out.empty()) out += ' ';
    out += o->get_name();
    if (o->get_expected_max() > 1) out += "...";
  }
  return out;
}

// What a value of `o` must be, for "'abc' is not ...": from the option's CLI11 type name.
std::string value_kind(const CLI::Option* o) {
  const std::string type = o ? o->get_type_name() : std::string();
  if (type == "FLOAT") return "a number";
  if (type == "INT" || type == "UINT") return "a whole number";
  return type.empty() ? std::string("a valid value") : "a " + type;
}

// CLI11 lists extras last first ("3 2" for "decode 1 2 3"): back in the order they were given.
std::string in_order(const std::string& reversed) {
  std::vector<std::string> words;
  for (std::size_t at = 0; at <= reversed.size();) {
    const std::size_t end = std::min(reversed.find(' ', at), reversed.size());
    words.push_back(reversed.substr(at, end - at));
    at = end + 1;
  }
  std::string out;
  for (auto it = words.rbegin(); it != words.rend(); ++it) out += (out.empty() ? "" : " ") + *it;
  return out;
}

// By the error's type: CLI11's get_name() is the command's name for some of them.
std::string sentence(const CLI::App& cmd, const CLI::Error& e) {
  const std::string what = e.what();
  std::smatch m;
  if (dynamic_cast<const CLI::RequiredError*>(&e)) {
    if (what == "A subcommand is required") {
      const auto rest = cmd.remaining();
      if (!rest.empty())
        return "'" + rest.front() + "' is not one of its commands (" + one_of(command_names(cmd)) +
               ")";
      return "needs a command: " + one_of(command_names(cmd));
    }
    static const std::regex required(R"(^(\S+) is required$)");
    if (std::regex_match(what, m, required)) {
      const CLI::Option* o = cmd.get_option_no_throw(m[1].str());
      const std::string desc = o ? " (" + o->get_description() + ")" : std::string();
      // "decode --bogus": CLI11 reports the missing FILE before the option it did not know.
      for (const auto& word : cmd.remaining())
        if (word.size() > 1 && word[0] == '-') return "has no option " + word;
      if (o && o->get_positional()) return "the argument " + m[1].str() + " is missing" + desc;
      return "the option " + m[1].str() + " is missing" + desc;
    }
  } else if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
    static const std::regex typed(R"(^(\S+): \d+ required (\S+) missing$)");
    static const std::regex counts(R"(^(\S+): At (Most|least) (\d+) required but received (\d+)$)");
    if (std::regex_match(what, m, typed)) return m[1].str() + ": needs a value, " + m[2].str();
    if (std::regex_match(what, m, counts))
      return fmt::format("takes at {} {} argument(s) ({}), got {}",
                         m[2] == "Most" ? "most" : "least", m[3].str(), positionals(cmd),
                         m[4].str());
  } else if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    static const std::regex extras(R"(^The following arguments? (?:was|were) not expected: (.*)$)");
    if (std::regex_match(what, m, extras)) {
      const std::string args = in_order(m[1].str());
      if (!args.empty() && args[0] == '-') return "has no option " + args.substr(0, args.find(' '));
      if (const auto names = command_names(cmd); !names.empty())
        return "'" + args.substr(0, args.find(' ')) + "' is not one of its commands (" +
               one_of(names) + ")";
      if (const auto takes = positionals(cmd); !takes.empty())
        return "takes " + takes + " only; '" + args + "' is more than that";
      return "takes options only, not the argument '" + args + "'";
    }
  } else if (dynamic_cast<const CLI::ConversionError*>(&e)) {
    static const std::regex convert(R"(^Could not convert: (\S+) = (.*)$)");
    if (std::regex_match(what, m, convert))
      return m[1].str() + ": '" + m[2].str() + "' is not " +
             value_kind(cmd.get_option_no_throw(m[1].str()));
  }
  // The validators' own sentences ("--limit: 'abc' is not a number"), and anything else.
  std::string s = what;
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

namespace {

// The deepest command parsed and its full name ("flowd label decode").
std::pair<const CLI::App*, std::string> deepest(const CLI::App& app) {
  const CLI::App* cmd = &app;
  std::string name = "flowd";
  for (auto subs = cmd->get_subcommands(); !subs.empty(); subs = cmd->get_subcommands()) {
    cmd = subs.back();
    name += " " + cmd->get_name();
  }
  return {cmd, name};
}

}  // namespace

std::string usage_of(const CLI::App& app) {
  const auto [cmd, name] = deepest(app);
  std::string out = CLI::Formatter().make_usage(cmd, name);
  if (!cmd->get_footer().empty()) out += cmd->get_footer() + "\n";
  return out + "Run '" + name + " --help' for more information.\n";
}

std::string parse_failure(const CLI::App& app, const CLI::Error& e) {
  const auto [cmd, name] = deepest(app);
  return name + ": " + sentence(*cmd, e) + "\n" + usage_of(app);
}

}  // namespace flowd
