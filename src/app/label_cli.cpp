// SPDX-License-Identifier: Apache-2.0
#include "app/label_cli.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "core/registry_loader.hpp"
#include "flowd/scitags_label.hpp"

namespace flowd {
namespace {

std::optional<unsigned long> parse_number(const std::string& s) {
  try {
    std::size_t used = 0;
    unsigned long v = std::stoul(s, &used, 0);  // 0x... accepted
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

int label_command(const std::vector<std::string>& args) {
  std::string err;
  auto reg = ScitagsRegistry::parse(registry_snapshot_json(), err);
  if (args.size() == 3 && args[0] == "encode") {
    auto exp = reg->experiment_id(args[1]);
    auto act = exp ? reg->activity_id(*exp, args[2]) : std::nullopt;
    if (!exp || !act) {
      std::fprintf(stderr,
                   "flowd label encode: experiment 0..511 and activity 0..63 (numbers or names)\n");
      return 2;
    }
    std::uint32_t label = make_label(*exp, *act, 0);
    fmt::print(
        "label {} (0x{:05x}): experiment {} ({}), activity {} ({}); entropy bits 0x{:05x} are "
        "chosen per flow\n",
        label, label, *exp, reg->experiment_name(*exp), *act, reg->activity_name(*exp, *act),
        kLabelEntropyMask);
    return 0;
  }
  if (args.size() == 2 && args[0] == "decode") {
    auto v = parse_number(args[1]);
    if (!v || *v > FLOWD_LABEL_MASK) {
      std::fprintf(stderr, "flowd label decode: a 20-bit flow label, decimal or 0x hex\n");
      return 2;
    }
    auto label = static_cast<std::uint32_t>(*v);
    auto tag = decode_label(label);
    fmt::print("label {} (0x{:05x}): experiment {} ({}), activity {} ({}), entropy 0x{:05x}\n",
               label, label, tag.experiment, reg->experiment_name(tag.experiment), tag.activity,
               reg->activity_name(tag.experiment, tag.activity), label & kLabelEntropyMask);
    return 0;
  }
  std::fprintf(stderr,
               "usage: flowd label encode EXPERIMENT ACTIVITY | flowd label decode LABEL\n");
  return 2;
}

}  // namespace flowd
