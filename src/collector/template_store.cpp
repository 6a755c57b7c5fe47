// SPDX-License-Identifier: Apache-2.0
// The template store, and the data held while its template is missing (RFC 7011 §8: a Collecting
// Process may hold data until the template arrives; bounded in count, bytes and age).
#include "collector/template_store.hpp"

#include <algorithm>

#include "collector/decoder_state.hpp"
#include "collector/template_budget.hpp"

namespace flowd::collector {

bool Template::same_layout(const Template& o) const {
  if (fields.size() != o.fields.size() || scope_count != o.scope_count || options != o.options)
    return false;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].pen != o.fields[i].pen || fields[i].id != o.fields[i].id ||
        fields[i].length != o.fields[i].length)
      return false;
  }
  return true;
}

void index_layout(Template& t) {
  t.relative_times = relative_times_of(t.fields);
  t.keys = key_fields_of(t.fields);
  t.sampling_fields = has_sampling_fields(t.fields);
}

// ---- templates
// -----------------------------------------------------------------------------------

TemplateStore::TemplateStore(const DecoderLimits& limits)
    : udp_(limits.udp),
      timeout_(limits.template_timeout),
      max_per_exporter_(limits.max_templates_per_exporter),
      budget_(limits.budget
                  ? limits.budget
                  : std::make_shared<TemplateBudget>(TemplateBounds{
                        limits.max_template_bytes_per_exporter, limits.max_template_bytes})),
      owner_(budget_->join()) {}

TemplateStore::~TemplateStore() {
  leave_budget();
}

TemplateStore::TemplateStore(TemplateStore&& o) noexcept
    : udp_(o.udp_),
      timeout_(o.timeout_),
      max_per_exporter_(o.max_per_exporter_),
      budget_(std::move(o.budget_)),
      owner_(o.owner_),
      templates_(std::move(o.templates_)),
      counts_(std::move(o.counts_)) {
  o.templates_.clear();
  o.counts_.clear();
}

TemplateStore& TemplateStore::operator=(TemplateStore&& o) noexcept {
  if (this == &o) return *this;
  leave_budget();
  udp_ = o.udp_;
  timeout_ = o.timeout_;
  max_per_exporter_ = o.max_per_exporter_;
  budget_ = std::move(o.budget_);
  owner_ = o.owner_;
  templates_ = std::move(o.templates_);
  counts_ = std::move(o.counts_);
  o.templates_.clear();
  o.counts_.clear();
  return *this;
}

void TemplateStore::leave_budget() {
  if (budget_) budget_->leave(owner_);
  budget_.reset();
}

const Template* TemplateStore::find(const TemplateKey& key, TimePoint now) {
  auto it = templates_.find(key);
  if (it == templates_.end()) return nullptr;
  if (udp_ && now - it->second.seen > timeout_) {
    erase(key);
    return nullptr;
  }
  return &it->second;
}

bool TemplateStore::refresh(const TemplateKey& key, TimePoint now) {
  auto it = templates_.find(key);
  if (it == templates_.end()) return false;
  it->second.seen = now;
  budget_->touch(owner_, key);
  return true;
}

bool TemplateStore::store(const TemplateKey& key, Template t, TimePoint now, DecodeResult& result) {
  t.seen = now;
  const bool known = templates_.contains(key);
  if (auto c = counts_.find(key.exporter);
      !known && (c == counts_.end() ? 0 : c->second) >= max_per_exporter_) {
    ++result.templates_refused[static_cast<std::size_t>(TemplateRefusal::kMaxTemplates)];
    result.errors.push_back(DecodeError::kTemplateLimit);
    return false;
  }
  std::vector<TemplateKey> evicted;
  const bool fits = budget_->charge(owner_, key, template_bytes(t), result, evicted);
  for (const auto& k : evicted) drop(k);
  if (!fits) {
    drop(key);  // a refused redefinition: the old layout is stale (the budget released it)
    result.errors.push_back(DecodeError::kTemplateLimit);
    return false;
  }
  auto it = templates_.find(key);
  if (it != templates_.end()) {
    it->second = std::move(t);  // a redefinition replaces (RFC 3954, RFC 7011 §8.1)
    return true;
  }
  ++counts_[key.exporter];
  templates_.emplace(key, std::move(t));
  return true;
}

void TemplateStore::drop(const TemplateKey& key) {
  if (templates_.erase(key) == 0) return;
  auto it = counts_.find(key.exporter);
  if (it != counts_.end() && --it->second == 0) counts_.erase(it);
}

void TemplateStore::erase(const TemplateKey& key) {
  budget_->release(owner_, key);
  drop(key);
}

std::vector<TemplateKey> TemplateStore::erase_kind(const ExporterKey& exporter,
                                                   std::uint8_t version, std::uint32_t domain,
                                                   bool options) {
  std::vector<TemplateKey> doomed;
  for (const auto& [k, t] : templates_)
    if (k.exporter == exporter && k.version == version && k.domain == domain &&
        t.options == options)
      doomed.push_back(k);
  for (const auto& k : doomed) erase(k);
  return doomed;
}

void TemplateStore::expire(TimePoint now) {
  for (const auto& k : budget_->take_evicted(owner_)) drop(k);
  if (!udp_) return;
  for (auto it = templates_.begin(); it != templates_.end();) {
    if (now - it->second.seen > timeout_) {
      budget_->release(owner_, it->first);
      auto c = counts_.find(it->first.exporter);
      if (c != counts_.end() && --c->second == 0) counts_.erase(c);
      it = templates_.erase(it);
    } else {
      ++it;
    }
  }
}

void TemplateStore::forget(const ExporterKey& with_port, const ExporterKey& without_port) {
  auto mine = [&](const ExporterKey& k) { return k == with_port || k == without_port; };
  for (auto it = templates_.begin(); it != templates_.end();) {
    if (mine(it->first.exporter)) {
      budget_->release(owner_, it->first);
      it = templates_.erase(it);
    } else {
      ++it;
    }
  }
  counts_.erase(with_port);
  counts_.erase(without_port);
}

bool Decoder::State::commit_template(const TemplateKey& key, Template t, TimePoint now,
                                     RecordBatch& out, DecodeResult& result) {
  if (!templates.store(key, std::move(t), now, result)) return false;
  ++result.templates;
  release(key, out, result, now);
  return true;
}

// ---- held data
// -----------------------------------------------------------------------------------

namespace {
ExporterKey address_of(const ExporterKey& k) {
  ExporterKey a = k;
  a.port = 0;
  return a;
}
}  // namespace

std::deque<PendingSet>::iterator Decoder::State::drop_pending(std::deque<PendingSet>::iterator it,
                                                              PendingSet* take) {
  const std::size_t size = it->body.size();
  pending_bytes -= size;
  if (auto a = pending_by_address.find(address_of(it->key.exporter));
      a != pending_by_address.end() && (a->second -= size) == 0)
    pending_by_address.erase(a);
  if (take) *take = std::move(*it);
  return pending.erase(it);
}

void Decoder::State::hold(PendingSet p, DecodeResult& result) {
  const std::size_t size = p.body.size();
  if (limits.max_pending_records == 0 || size > limits.max_pending_bytes ||
      size > limits.max_pending_bytes_per_exporter) {
    result.errors.push_back(DecodeError::kPendingOverflow);
    return;
  }
  // Make room by dropping the oldest held sets, first the same exporter address's (one sender
  // cannot push the others' out), then anyone's: newer data is more likely to meet its template.
  const ExporterKey address = address_of(p.key.exporter);
  for (auto a = pending_by_address.find(address);
       a != pending_by_address.end() && a->second + size > limits.max_pending_bytes_per_exporter;
       a = pending_by_address.find(address)) {
    auto oldest = std::find_if(pending.begin(), pending.end(), [&](const PendingSet& q) {
      return address_of(q.key.exporter) == address;
    });
    if (oldest == pending.end()) break;  // cannot happen: the map counts what the deque holds
    drop_pending(oldest);
    result.errors.push_back(DecodeError::kPendingOverflow);
  }
  while (!pending.empty() && (pending.size() >= limits.max_pending_records ||
                              pending_bytes + size > limits.max_pending_bytes)) {
    drop_pending(pending.begin());
    result.errors.push_back(DecodeError::kPendingOverflow);
  }
  pending_bytes += size;
  pending_by_address[address] += size;
  pending.push_back(std::move(p));
  ++result.pending;
}

void Decoder::State::release(const TemplateKey& key, RecordBatch& out, DecodeResult& result,
                             TimePoint now) {
  for (auto it = pending.begin(); it != pending.end();) {
    if (!(it->key == key)) {
      ++it;
      continue;
    }
    PendingSet p;
    it = drop_pending(it, &p);
    const Template* t = templates.find(key, now);
    if (!t) break;
    // A held set that turns out to be malformed adds nothing.
    const std::size_t mark = out.size();
    std::size_t n = 0;
    if (decode_data_set(*t, key.id, p.body, p.ctx, out, n)) {
      result.records += n;
    } else {
      out.truncate(mark);
      result.errors.push_back(DecodeError::kBadRecord);
    }
  }
}

std::size_t Decoder::State::drop_old_pending(TimePoint now) {
  std::size_t dropped = 0;
  for (auto it = pending.begin(); it != pending.end();) {
    if (now - it->ctx.received > limits.max_pending_age) {
      it = drop_pending(it);
      ++dropped;
    } else {
      ++it;
    }
  }
  return dropped;
}

}  // namespace flowd::collector
