// SPDX-License-Identifier: Apache-2.0
#include "app/label_cli.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "core/registry_loader.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/scitags_label.hpp"

namespace flowd {
namespace {

std::optional<unsigned long> parse_number(const std::string& s) {
  if (s.empty() || s[0] == '-' || s[0] == '+' || s[0] == ' ') return std::nullopt;
  try {
    std::size_t used = 0;
    unsigned long v = std::stoul(s, &used, 0);  // 0x... accepted
    if (used != s.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

LabelOutput usage_error(std::string text) {
  return {2, "", std::move(text)};
}

}  // namespace

LabelOutput run_label_command(const std::vector<std::string>& args) {
  std::string err;
  auto reg = ScitagsRegistry::parse(registry_snapshot_json(), err);
  if (args.size() == 3 && args[0] == "encode") {
    auto exp = reg->experiment_id(args[1]);
    if (!exp)
      return usage_error(fmt::format(
          "flowd label encode: experiment '{}' is neither 0..{} nor an experiment name of the "
          "registry\n",
          args[1], kMaxExperiment));
    auto act = reg->activity_id(*exp, args[2]);
    if (!act)
      return usage_error(fmt::format(
          "flowd label encode: activity '{}' is neither 0..{} nor an activity name of experiment "
          "{} ({}); names are spelled as the registry spells them\n",
          args[2], kMaxActivity, *exp, reg->experiment_name(*exp)));
    std::uint32_t label = make_label(*exp, *act, 0);
    return {0,
            fmt::format("label {} (0x{:05x}): experiment {} ({}), activity {} ({}); entropy bits "
                        "0x{:05x} are chosen per flow; scitag {}\n",
                        label, label, *exp, reg->experiment_name(*exp), *act,
                        reg->activity_name(*exp, *act), kLabelEntropyMask, make_scitag(*exp, *act)),
            ""};
  }
  if (args.size() == 2 && args[0] == "decode") {
    auto v = parse_number(args[1]);
    if (!v)
      return usage_error(fmt::format(
          "flowd label decode: '{}' is not a flow label (a 20-bit number, decimal or 0x hex)\n",
          args[1]));
    if (*v > FLOWD_LABEL_MASK)
      return usage_error(
          fmt::format("flowd label decode: {} is out of range: a flow label has 20 bits (0..{}, "
                      "0x0..0x{:05x})\n",
                      args[1], FLOWD_LABEL_MASK, FLOWD_LABEL_MASK));
    auto label = static_cast<std::uint32_t>(*v);
    auto tag = decode_label(label);
    return {0,
            fmt::format("label {} (0x{:05x}): experiment {} ({}), activity {} ({}), entropy "
                        "0x{:05x}; scitag {}\n",
                        label, label, tag.experiment, reg->experiment_name(tag.experiment),
                        tag.activity, reg->activity_name(tag.experiment, tag.activity),
                        label & kLabelEntropyMask, make_scitag(tag.experiment, tag.activity)),
            ""};
  }
  if (args.size() == 2 && args[0] == "scitag") {
    auto v = parse_number(args[1]);
    auto tag = v ? decode_scitag(*v) : std::nullopt;
    if (!tag)
      return usage_error(
          fmt::format("flowd label scitag: '{}' is not a scitag (experiment << 6 | activity, "
                      "0..{}, decimal or 0x hex)\n",
                      args[1], kScitagMax));
    std::uint32_t label = make_label(tag->experiment, tag->activity, 0);
    return {0,
            fmt::format("scitag {}: experiment {} ({}), activity {} ({}); label {} (0x{:05x}) "
                        "with entropy bits 0x{:05x} chosen per flow\n",
                        *v, tag->experiment, reg->experiment_name(tag->experiment), tag->activity,
                        reg->activity_name(tag->experiment, tag->activity), label, label,
                        kLabelEntropyMask),
            ""};
  }
  return usage_error(
      "usage: flowd label encode EXPERIMENT ACTIVITY | flowd label decode LABEL | flowd label "
      "scitag SCITAG\n");
}

}  // namespace flowd
