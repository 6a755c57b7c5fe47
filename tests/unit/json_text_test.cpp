// SPDX-License-Identifier: Apache-2.0
// append_json_string (common/json_text.hpp), shared by the firefly writer and the Kafka events:
// every string it writes reads back as the same string, and control characters are escaped.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/json_text.hpp"

TEST(JsonText, StringsReadBackUnchanged) {
  for (const std::string& s : {std::string(""), std::string("plain"), std::string("q\"uo\\te"),
                               std::string("nul\0and\x1f\x7f", 10),
                               std::string("\xc3\xa9t\xc3\xa9"), std::string("tab\tnew\nline")}) {
    std::string out;
    flowd::append_json_string(out, s);
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j.get<std::string>(), s) << out;
    for (char c : out) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << out;
  }
  std::string out;
  flowd::append_json_string(out, std::string("\x01", 1));
  EXPECT_EQ(out, "\"\\u0001\"");
}
