// SPDX-License-Identifier: Apache-2.0
// When a flow label read from a router's export (NetFlow/IPFIX flowLabelIPv6, or an sFlow sampled
// packet header) counts as a Scitags tag (spec/README.md, "Flows observed on the network").
//
// Linux puts a pseudo-random label on IPv6 traffic by default (net.ipv6.auto_flowlabels) and the
// Scitags layout has no check bits, so a label is evidence, not an instruction: it is a tag only
// when its experiment/activity pair is registered (label_trust = registered), the flow touches one
// of the site's `label_networks` when those are set, and it stays the same for the flow
// (FlowTracker).
#pragma once

#include <bitset>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/net/prefix.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/scitags_label.hpp"
#include "flowd/scitags_registry.hpp"

namespace flowd::netflow {

enum class LabelTrust : std::uint8_t {
  kRegistered,  // the pair must be in the loaded registry (default)
  kAny,         // any label with non-zero experiment or activity bits (labs)
  kOff,         // labels are never tags (only `rules` tag observed flows)
};
std::optional<LabelTrust> parse_label_trust(std::string_view text);

// What a label seen in an export turned out to be: the `result` label of
// flowd_observed_labels_total.
enum class LabelResult : std::uint8_t {
  kTag,           // counts as a Scitags tag
  kUnregistered,  // its pair is not in the registry
  kOutside,       // neither end of the flow is in label_networks
  kUnstable,      // the flow carried another label before (or this one changed)
  kNone,          // no Scitags bits (zero label, or label_trust = off)
};
inline constexpr std::size_t kLabelResultCount = 5;
std::string_view to_string(LabelResult r);

class LabelPolicy {
 public:
  LabelPolicy(LabelTrust trust, std::vector<net::Prefix> networks)
      : trust_(trust), networks_(std::move(networks)) {}

  // Classifies `label` on a flow between `src` and `dst` (stability is the tracker's part). The
  // registry is read through a snapshot rebuilt only when the handle's registry changes (reload).
  LabelResult classify(std::uint32_t label, const IpAddress& src, const IpAddress& dst,
                       const std::shared_ptr<const ScitagsRegistry>& registry);
  // classify() for a policy without label_networks (needs_addresses() is false), inline: it runs
  // for every labelled record.
  LabelResult classify(std::uint32_t label,
                       const std::shared_ptr<const ScitagsRegistry>& registry) {
    if (trust_ == LabelTrust::kOff || (label & kLabelSemanticMask) == 0) return LabelResult::kNone;
    if (trust_ == LabelTrust::kRegistered) {
      if (cached_for_ != registry) cache(registry);
      if (!experiments_.test((label >> 9) & 0x1FFu) || !registered_.test(bit_of(label)))
        return LabelResult::kUnregistered;
    }
    return LabelResult::kTag;
  }
  LabelTrust trust() const { return trust_; }
  // Whether classify() looks at the addresses (label_networks is set).
  bool needs_addresses() const { return !networks_.empty(); }

 private:
  bool inside(const IpAddress& a) const;
  void cache(const std::shared_ptr<const ScitagsRegistry>& registry);
  LabelTrust trust_;
  std::vector<net::Prefix> networks_;
  // The bitmap's bit for a label: its experiment bits as they are on the wire (bit-reversed, see
  // flowd_label.h) and its activity bits, so that a label is tested without decoding it.
  static std::size_t bit_of(std::uint32_t label) {
    return ((label >> 9) & 0x1FFu) << 6 | ((label >> 2) & 0x3Fu);
  }
  // Registered pairs as a 512 x 64 bitmap (4 KiB): one bit test per label on the hot path.
  // Held, so that a new registry can never reuse the address of the one the bitmap was built from.
  std::shared_ptr<const ScitagsRegistry> cached_for_;
  std::bitset<(kMaxExperiment + 1) * (kMaxActivity + 1)> registered_;
  // The experiments (wire bits, as bit_of) with a registered pair: one 64-byte line that settles
  // most random labels without touching the 4 KiB bitmap, which the records evict from the cache.
  std::bitset<kMaxExperiment + 1> experiments_;
};

}  // namespace flowd::netflow
