// SPDX-License-Identifier: Apache-2.0
// flowd's command-line errors as a person reads them (issue 15): CLI11's own texts ("file is
// required", "--socket: 1 required PATH missing", "The following argument was not expected: x",
// "Could not convert: --window = abc") name internal option names and no command.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace flowd {

// What to print on stderr (exit 2) for a parse error of `app`: one line "flowd CMD: SENTENCE"
// naming the deepest command parsed ("flowd label decode"), saying what is missing or wrong, then
// that command's usage line, its footer and "Run 'flowd CMD --help' for more information.".
std::string parse_failure(const CLI::App& app, const CLI::Error& e);
// The usage part of that alone, for an error found after parsing (a label that is no number).
std::string usage_of(const CLI::App& app);

}  // namespace flowd
