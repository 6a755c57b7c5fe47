// SPDX-License-Identifier: Apache-2.0
// Templates (RFC 3954 §5.2-5.3, RFC 7011 §3.4 and §8): who they belong to, what a parsed one holds,
// and the bounded store the v9 and IPFIX decoders keep them in. Internal header of src/collector/.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/flow_record.hpp"
#include "collector/ie_names.hpp"

namespace flowd::collector {

// Who a template/sequence belongs to. v9 keys by exporter address only (port 0), as RFC 3954 asks;
// IPFIX by address and port (RFC 7011 §8.4: the Transport Session).
struct ExporterKey {
  int family = 0;
  std::array<std::uint8_t, 16> addr{};
  std::uint16_t port = 0;
  auto operator<=>(const ExporterKey&) const = default;
};

struct TemplateKey {
  ExporterKey exporter;
  std::uint8_t version = 0;
  std::uint32_t domain = 0;
  std::uint16_t id = 0;  // 0 in sequence keys
  auto operator<=>(const TemplateKey&) const = default;
};

inline constexpr std::uint16_t kVariableLength = 65535;

struct FieldSpec {
  std::uint32_t pen = 0;
  std::uint16_t id = 0;
  std::uint16_t length = 0;  // kVariableLength = IPFIX variable-length encoding
  IeType type = IeType::kOctetArray;
};

// Where a template's relative times are: field positions of 22, 21, 158, 159 (-1: absent, or the
// absolute element 152/153/154/155 is there too, so nothing is derived).
struct RelativeTimes {
  static constexpr std::size_t kRules = 4;
  std::array<std::int16_t, kRules> relative{-1, -1, -1, -1};
  std::array<bool, kRules> absolute{};
  bool any() const {
    return relative[0] >= 0 || relative[1] >= 0 || relative[2] >= 0 || relative[3] >= 0;
  }
};

struct Template {
  std::vector<FieldSpec> fields;
  std::uint16_t scope_count = 0;
  bool options = false;
  std::size_t min_record = 0;  // fixed lengths + 1 byte per variable-length field
  TimePoint seen{};
  std::vector<std::uint8_t> raw;  // IPFIX: the template record as received (resends are compared)
  RelativeTimes relative_times;   // where 22/21/158/159 are (see derive_absolute_times)
  KeyFields keys;                 // where the 5-tuple, label and counters are (FlowRecord::keys)
  bool sampling_fields = false;   // has 34/48/302 (see has_sampling_fields)
  bool same_layout(const Template& o) const;
};

// Notes, once per parsed template, where its relative times, key fields and sampling fields are
// (Template::relative_times, keys, sampling_fields), so that records are not scanned for them.
void index_layout(Template& t);
RelativeTimes relative_times_of(const std::vector<FieldSpec>& fields);  // values.cpp
KeyFields key_fields_of(const std::vector<FieldSpec>& fields);
// Whether a template has samplingInterval, samplerId or selectorId (34/48/302): only then does the
// sampling rate need a look at the record itself (sampling.cpp).
bool has_sampling_fields(const std::vector<FieldSpec>& fields);

// The templates of one decoder, at most max_templates_per_exporter per exporter key and within the
// byte bounds of the TemplateBudget it shares with the collector's other decoders (the oldest are
// evicted to make room; template_budget.hpp). More, or one too large, are refused with
// kTemplateLimit. Over UDP a template lives template_timeout past its last definition or refresh
// (RFC 7011 §8.4); over TCP until withdrawn or the session ends (limits.udp = false).
class TemplateStore {
 public:
  explicit TemplateStore(const DecoderLimits& limits = {});
  ~TemplateStore();
  TemplateStore(TemplateStore&& o) noexcept;
  TemplateStore& operator=(TemplateStore&& o) noexcept;

  // The template under `key`; nullptr when there is none or (UDP) when it outlived its lifetime,
  // which erases it.
  const Template* find(const TemplateKey& key, TimePoint now);
  // Restarts the lifetime of the template under `key` (a resend with unchanged bytes) and makes it
  // the most recently used in the budget; false when there is none.
  bool refresh(const TemplateKey& key, TimePoint now);
  // Stores or replaces (a redefinition, RFC 3954 §5.2, RFC 7011 §8.1) the template under `key`,
  // evicting the oldest templates the byte bounds require; false, with kTemplateLimit in `result`
  // (and the refusal counted there), when the exporter holds its maximum count already or the
  // template alone exceeds max_template_bytes_per_exporter (a redefinition refused so erases the
  // old definition: its layout is stale). Evictions are counted in `result`.
  bool store(const TemplateKey& key, Template t, TimePoint now, DecodeResult& result);
  void erase(const TemplateKey& key);
  // Erases every data (options = false) or options template of one exporter's domain and version
  // (an IPFIX "withdraw all", RFC 7011 §8.1) and returns their keys.
  std::vector<TemplateKey> erase_kind(const ExporterKey& exporter, std::uint8_t version,
                                      std::uint32_t domain, bool options);
  // UDP: erases the templates that outlived their lifetime. Both: erases those another store's
  // charge evicted from the shared budget.
  void expire(TimePoint now);
  // Erases every template of an exporter, under either key (v9: address; IPFIX: address and port).
  void forget(const ExporterKey& with_port, const ExporterKey& without_port);
  std::size_t size() const { return templates_.size(); }
  bool contains(const TemplateKey& key) const { return templates_.contains(key); }
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const auto& [k, t] : templates_) fn(k, t);
  }
  const TemplateBudget& budget() const { return *budget_; }

 private:
  // Erases locally what the budget no longer charges (evicted); no release.
  void drop(const TemplateKey& key);
  void leave_budget();

  bool udp_;
  std::chrono::seconds timeout_;
  std::size_t max_per_exporter_;
  std::shared_ptr<TemplateBudget> budget_;  // null only when moved from
  std::uint64_t owner_ = 0;                 // TemplateBudget::Owner
  std::map<TemplateKey, Template> templates_;
  std::map<ExporterKey, std::size_t> counts_;  // templates per exporter key, for the bound
};

}  // namespace flowd::collector
