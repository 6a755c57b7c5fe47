// SPDX-License-Identifier: Apache-2.0
// The README's "One site, many hosts" configs (issue 16) are real configurations: each passes
// `flowd --check-config`, which builds every component of it, so the manual cannot drift from the
// keys flowd takes.
#include <gtest/gtest.h>

#include <regex>

#include "harness.hpp"

namespace flowd::test {
namespace {

TEST(ReadmeRoles, EveryRoleConfigOfOneSiteManyHostsPassesCheckConfig) {
  const std::string readme = read_file(std::string(FLOWD_SOURCE_DIR) + "/README.md");
  const auto begin = readme.find("## One site, many hosts");
  ASSERT_NE(begin, std::string::npos);
  const auto end = readme.find("\n## ", begin + 1);
  const std::string section = readme.substr(begin, end - begin);
  const std::regex block("```ini\n([^`]*)```");
  TempDir dir;
  std::size_t n = 0;
  for (std::sregex_iterator it(section.begin(), section.end(), block), last; it != last; ++it) {
    const std::string name = "role" + std::to_string(++n) + ".cfg";
    // A marked interface must exist where the check runs (issue 15): the example's bond0 is the
    // storage node's; loopback, which every host has, stands in for it here.
    dir.write(name, std::regex_replace((*it)[1].str(), std::regex("interfaces = bond0"),
                                       "interfaces = lo"));
    std::string out, err;
    EXPECT_EQ(run_flowd({"--check-config", "-c", dir.file(name)}, out, err), 0)
        << "role " << n << ":\n"
        << (*it)[1].str() << "\n"
        << out << err;
  }
  EXPECT_EQ(n, 3u) << "storage node, border collector, site collector";
}

}  // namespace
}  // namespace flowd::test
