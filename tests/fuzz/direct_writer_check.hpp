// SPDX-License-Identifier: Apache-2.0
// For the decoders' fuzz targets: the direct JSON writer of records (the dump's and Kafka's) writes
// what the DOM writer writes, byte for byte, for whatever a decoder made of the input.
#pragma once

#include <string>

#include "collector/record_json.hpp"
#include "collector/record_json_writer.hpp"

namespace flowd::fuzz {

template <typename Records>
void check_direct_writer(const Records& records) {
  static collector::RecordJsonWriter writer;
  static std::string direct;
  for (const auto& r : records) {
    direct.clear();
    writer.append(direct, r);
    if (direct != collector::to_json(r).dump()) __builtin_trap();
  }
}

}  // namespace flowd::fuzz
