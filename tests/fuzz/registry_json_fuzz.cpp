// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the Scitags registry JSON (ScitagsRegistry::parse and its lookups).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto reg = flowd::ScitagsRegistry::parse(json, error);
  if (!reg) {
    if (error.empty()) __builtin_trap();  // a failure must say why
    return 0;
  }
  static constexpr std::string_view kNames[] = {
      "default", "atlas", "cms", "ATLAS", "Data Challenge", "perfSONAR", "0", "1", "2", "63",
      "64",      "511",   "512", "-1",    "4294967296",     "",          " ", "x"};
  for (auto name : kNames) {
    if (auto e = reg->experiment_id(name)) {
      if (*e > flowd::kMaxExperiment) __builtin_trap();
      (void)reg->experiment_name(*e);
      for (auto act : kNames) {
        if (auto a = reg->activity_id(*e, act)) {
          if (*a > flowd::kMaxActivity) __builtin_trap();
          (void)reg->activity_name(*e, *a);
        }
      }
    }
  }
  for (unsigned id : {0u, 1u, 2u, 3u, 511u, 512u, 65535u}) {
    (void)reg->experiment_name(id);
    (void)reg->activity_name(id, 1);
    (void)reg->activity_name(id, 64);
  }
  (void)reg->experiment_count();
  (void)reg->modified();
  return 0;
}
