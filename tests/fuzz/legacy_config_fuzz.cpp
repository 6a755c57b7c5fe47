// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: Python flowd.cfg files (parse_legacy + validate_config).
// ConfigError is the expected failure; any other exception escapes and libFuzzer reports it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "app/components.hpp"
#include "core/config_loader.hpp"
#include "flowd/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    flowd::RawConfig raw = flowd::parse_legacy(text, "fuzz.cfg", flowd::component_table());
    flowd::Config c = flowd::validate_config(raw, flowd::component_table());
    (void)c;
  } catch (const flowd::ConfigError&) {
  }
  return 0;
}
