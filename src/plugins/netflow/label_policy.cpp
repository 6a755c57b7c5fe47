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

LabelResult LabelPolicy::classify(std::uint32_t label, const IpAddress& src, const IpAddress& dst,
                                  const std::shared_ptr<const ScitagsRegistry>& registry) {
  if (trust_ == LabelTrust::kOff || (label & kLabelSemanticMask) == 0) return LabelResult::kNone;
  const LabelTag t = decode_label(label & FLOWD_LABEL_MASK);
  if (trust_ == LabelTrust::kRegistered) {
    if (cached_for_ != registry) {
      // The registry handle hands out a new object on every reload; the old one is never mutated.
      registered_.reset();
      for (unsigned e = 0; e <= kMaxExperiment; ++e)
        for (unsigned a = 0; a <= kMaxActivity; ++a)
          if (registry && registry->registered(e, a)) registered_.set(e * (kMaxActivity + 1) + a);
      cached_for_ = registry;
    }
    if (t.experiment > kMaxExperiment || t.activity > kMaxActivity ||
        !registered_.test(t.experiment * (kMaxActivity + 1) + t.activity))
      return LabelResult::kUnregistered;
  }
  if (!networks_.empty() && !inside(src) && !inside(dst)) return LabelResult::kOutside;
  return LabelResult::kTag;
}

}  // namespace flowd::netflow
