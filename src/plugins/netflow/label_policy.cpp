// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/label_policy.hpp"

#include "flowd/scitags_label.hpp"

namespace flowd::netflow {

std::optional<LabelTrust> parse_label_trust(std::string_view text) {
  if (text == "registered") return LabelTrust::kRegistered;
  if (text == "any") return LabelTrust::kAny;
  if (text == "off") return LabelTrust::kOff;
  return std::nullopt;
}

std::string_view to_string(LabelResult r) {
  switch (r) {
    case LabelResult::kTag:
      return "tag";
    case LabelResult::kUnregistered:
      return "unregistered";
    case LabelResult::kOutside:
      return "outside";
    case LabelResult::kUnstable:
      return "unstable";
    case LabelResult::kNone:
      return "none";
  }
  return "none";
}

bool LabelPolicy::inside(const IpAddress& a) const {
  for (const auto& p : networks_)
    if (p.contains(a)) return true;
  return false;
}

void LabelPolicy::cache(const std::shared_ptr<const ScitagsRegistry>& registry) {
  // The registry handle hands out a new object on every reload; the old one is never mutated.
  registered_.reset();
  experiments_.reset();
  for (unsigned e = 0; e <= kMaxExperiment; ++e)
    for (unsigned a = 0; a <= kMaxActivity; ++a)
      if (registry && registry->registered(e, a)) {
        const std::uint32_t label = make_label(e, a, 0);
        registered_.set(bit_of(label));
        experiments_.set((label >> 9) & 0x1FFu);
      }
  cached_for_ = registry;
}

LabelResult LabelPolicy::classify(std::uint32_t label, const IpAddress& src, const IpAddress& dst,
                                  const std::shared_ptr<const ScitagsRegistry>& registry) {
  const LabelResult r = classify(label, registry);
  if (r != LabelResult::kTag) return r;
  if (!networks_.empty() && !inside(src) && !inside(dst)) return LabelResult::kOutside;
  return LabelResult::kTag;
}

}  // namespace flowd::netflow
