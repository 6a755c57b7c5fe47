// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: configuration files (parse_config_text + validate_config + print_config), and
// the round trip: what print_config prints must parse and validate again. ConfigError is the
// expected failure of the first parse; any other exception escapes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "app/components.hpp"
#include "core/config_loader.hpp"
#include "flowd/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string printed;
  try {
    flowd::RawConfig raw = flowd::parse_config_text(text, "fuzz.ini", flowd::component_table());
    flowd::Config c = flowd::validate_config(raw, flowd::component_table());
    printed = flowd::print_config(c);
  } catch (const flowd::ConfigError&) {
    return 0;
  }
  // The round trip must not throw at all: a ConfigError here escapes as a crash too.
  flowd::RawConfig raw2 =
      flowd::parse_config_text(printed, "fuzz-printed.ini", flowd::component_table());
  flowd::Config c2 = flowd::validate_config(raw2, flowd::component_table());
  (void)flowd::print_config(c2);
  return 0;
}
