// SPDX-License-Identifier: Apache-2.0
// Reading a template file (template_file.hpp) with nlohmann's SAX interface: each entry is made
// into a SavedTemplate or SavedDomain straight from the parser's events, and no JSON value is ever
// built. A file of 300,000 templates (100 MB) made into a JSON document first took ten times its
// size in memory and seconds of allocation (a new user's try, issue 16); as events it costs the
// entries themselves. An entry that is malformed is skipped alone and counted; a file that is not
// JSON, or not of the template file's shape, is refused whole.
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <istream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "plugins/netflow/template_file.hpp"

namespace flowd::netflow {
namespace {

using nlohmann::json;

constexpr std::string_view kFormat = "flowd-templates";
constexpr std::int64_t kVersion = 1;
constexpr std::int64_t kMaxMs = 7'258'118'400'000;  // 2200-01-01: TimePoint's ns fit to 2262
constexpr std::uint64_t kU32 = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kU64 = std::numeric_limits<std::uint64_t>::max();

// One scalar member as the entry last gave it: absent, of a wrong type or out of range (bad), or
// a value.
struct Member {
  enum State : std::uint8_t { kAbsent, kBad, kSet } state = kAbsent;
  std::uint64_t value = 0;
  void set_unsigned(std::uint64_t v, std::uint64_t max) {
    state = v <= max ? kSet : kBad;
    value = v;
  }
  bool ok() const { return state == kSet; }
};

// The members of one entry (a template or a domain) being read.
struct Entry {
  std::string exporter;
  bool exporter_set = false;
  Member port, version, domain, id, scope_count, seen_ms, options, system_init_ms, default_rate;
  // "fields" (templates) or "rates" (domains): an array of arrays of 3 (2) unsigned integers.
  Member list;  // kSet once an array was given and every element was well formed so far
  std::vector<collector::SavedField> fields;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> rates;
};

enum class Top : std::uint8_t { kOther, kFormat, kVersion, kTemplates, kDomains };
enum class Key : std::uint8_t {
  kOther,
  kExporter,
  kPort,
  kVersion,
  kDomain,
  kId,
  kScopeCount,
  kSeenMs,
  kOptions,
  kFields,
  kSystemInitMs,
  kDefaultRate,
  kRates
};

Key key_of(std::string_view k) {
  static constexpr std::pair<std::string_view, Key> kKeys[] = {
      {"exporter", Key::kExporter},
      {"port", Key::kPort},
      {"ipfix_version", Key::kVersion},
      {"domain", Key::kDomain},
      {"id", Key::kId},
      {"scope_count", Key::kScopeCount},
      {"seen_ms", Key::kSeenMs},
      {"options", Key::kOptions},
      {"fields", Key::kFields},
      {"system_init_ms", Key::kSystemInitMs},
      {"default_rate", Key::kDefaultRate},
      {"rates", Key::kRates}};
  for (const auto& [name, key] : kKeys)
    if (k == name) return key;
  return Key::kOther;
}

// Depths: 0 outside everything, 1 inside the top-level object, 2 inside the "templates" or
// "domains" array, 3 inside an entry, 4 inside its "fields"/"rates" array, 5 inside one tuple.
class Collector final : public nlohmann::json_sax<json> {
 public:
  Collector(std::int64_t max_ms, TemplateFile& out, std::size_t size)
      : max_ms_(std::min(max_ms, kMaxMs)), out_(out) {
    // Room for as many templates as `size` characters could hold (an entry takes 100 at least):
    // reserved, not touched, so that the list never moves (a copy of it beside it at each growth
    // was the peak of a file of small templates).
    out_.snapshot.templates.reserve(size / 100);
  }

  bool top_is_object = false, format_ok = false, version_ok = false;
  bool templates_array = false, domains_array = false;

  bool null() override { return scalar(Scalar::kOther, 0, 0); }
  bool boolean(bool v) override { return scalar(Scalar::kBool, v ? 1 : 0, 0); }
  bool number_integer(number_integer_t v) override {
    return v >= 0 ? scalar(Scalar::kUnsigned, static_cast<std::uint64_t>(v), v)
                  : scalar(Scalar::kNegative, 0, v);
  }
  bool number_unsigned(number_unsigned_t v) override { return scalar(Scalar::kUnsigned, v, 0); }
  bool number_float(number_float_t, const string_t&) override {
    return scalar(Scalar::kOther, 0, 0);
  }
  bool binary(binary_t&) override { return scalar(Scalar::kOther, 0, 0); }
  bool string(string_t& v) override {
    if (depth_ == 1 && top_ == Top::kFormat) {
      format_ok = v == kFormat;
      return true;
    }
    if (depth_ == 3 && key_ == Key::kExporter) {
      entry_.exporter = v;
      entry_.exporter_set = true;
      return true;
    }
    return scalar(Scalar::kOther, 0, 0);
  }

  bool start_object(std::size_t) override { return open(false); }
  bool start_array(std::size_t) override { return open(true); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    if (depth_ == 1) {
      top_ = k == "format"      ? Top::kFormat
             : k == "version"   ? Top::kVersion
             : k == "templates" ? Top::kTemplates
             : k == "domains"   ? Top::kDomains
                                : Top::kOther;
      // A key given twice: its last value counts, as in a JSON document.
      if (top_ == Top::kTemplates) {
        out_.snapshot.templates.clear();
        out_.skipped_templates = 0;
        first_template_.clear();
        templates_array = false;
      } else if (top_ == Top::kDomains) {
        out_.snapshot.domains.clear();
        out_.skipped_domains = 0;
        first_domain_.clear();
        domains_array = false;
      } else if (top_ == Top::kFormat) {
        format_ok = false;
      } else if (top_ == Top::kVersion) {
        version_ok = false;
      }
    } else if (depth_ == 3) {
      key_ = key_of(k);
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  enum class Scalar : std::uint8_t { kUnsigned, kNegative, kBool, kOther };
  bool in_list() const { return top_ == Top::kTemplates || top_ == Top::kDomains; }
  bool templates() const { return top_ == Top::kTemplates; }

  bool scalar(Scalar type, std::uint64_t u, std::int64_t i) {
    switch (depth_) {
      case 0:  // a document that is a bare value
        return true;
      case 1:
        if (top_ == Top::kVersion)
          version_ok = (type == Scalar::kUnsigned && u == kVersion) ||
                       (type == Scalar::kNegative && i == kVersion);
        return true;
      case 2:
        if (in_list()) skip();  // an entry that is not an object
        return true;
      case 3:
        if (in_list() && in_entry_) member(type, u);
        return true;
      case 4:
        if (in_list() && in_entry_ && list_key_) entry_.list.state = Member::kBad;  // not a tuple
        return true;
      case 5:
        if (in_list() && in_entry_ && list_key_) {
          if (type != Scalar::kUnsigned || tuple_n_ >= 3)
            tuple_ok_ = false;
          else
            tuple_[tuple_n_++] = u;
        }
        return true;
      default:
        return true;
    }
  }

  void member(Scalar type, std::uint64_t u) {
    Entry& e = entry_;
    const bool un = type == Scalar::kUnsigned;
    auto set = [&](Member& m, std::uint64_t max) {
      if (un)
        m.set_unsigned(u, max);
      else
        m.state = Member::kBad;
    };
    switch (key_) {
      case Key::kExporter:
        e.exporter_set = false;  // not a string
        break;
      case Key::kPort:
        set(e.port, 65535);
        break;
      case Key::kVersion:
        set(e.version, 255);
        break;
      case Key::kDomain:
        set(e.domain, kU32);
        break;
      case Key::kId:
        set(e.id, 65535);
        break;
      case Key::kScopeCount:
        set(e.scope_count, 65535);
        break;
      case Key::kSeenMs:
        // An integer 0..max_ms_ (a negative one is never in range).
        set(e.seen_ms, static_cast<std::uint64_t>(max_ms_));
        break;
      case Key::kOptions:
        e.options.state = type == Scalar::kBool ? Member::kSet : Member::kBad;
        e.options.value = u;
        break;
      case Key::kSystemInitMs:
        set(e.system_init_ms, kU64);
        break;
      case Key::kDefaultRate:
        set(e.default_rate, kU64);
        break;
      case Key::kFields:
      case Key::kRates:
        if (ours(key_)) e.list.state = Member::kBad;  // not an array
        break;
      case Key::kOther:
        break;
    }
  }

  // Whether `k` is this entry kind's list ("fields" of a template, "rates" of a domain).
  bool ours(Key k) const { return templates() ? k == Key::kFields : k == Key::kRates; }

  bool open(bool array) {
    switch (depth_) {
      case 0:
        top_is_object = !array;
        break;
      case 1:
        if (top_ == Top::kTemplates) templates_array = array;
        if (top_ == Top::kDomains) domains_array = array;
        if (top_ == Top::kFormat) format_ok = false;
        if (top_ == Top::kVersion) version_ok = false;
        break;
      case 2:
        if (!in_list()) break;
        if (array) {
          skip();
        } else {
          entry_ = Entry{};
          in_entry_ = true;
          key_ = Key::kOther;
        }
        break;
      case 3:
        if (!in_list() || !in_entry_) break;
        list_key_ = array && ours(key_);
        if (list_key_) {
          entry_.list.state = Member::kSet;
          entry_.list.value = 0;
          entry_.fields.clear();
          entry_.rates.clear();
        } else if (key_ != Key::kOther) {
          member(Scalar::kOther, 0);  // an object or array where a scalar belongs
        }
        break;
      case 4:
        if (in_list() && in_entry_ && list_key_) {
          if (array) {
            tuple_n_ = 0;
            tuple_ok_ = true;
          } else {
            entry_.list.state = Member::kBad;
          }
        }
        break;
      case 5:
        if (in_list() && in_entry_ && list_key_) tuple_ok_ = false;
        break;
      default:
        break;
    }
    ++depth_;
    return true;
  }

  bool close() {
    --depth_;
    if (!in_list() || !in_entry_) return true;
    if (depth_ == 4 && list_key_) {
      tuple_done();
    } else if (depth_ == 3) {
      list_key_ = false;
    } else if (depth_ == 2) {
      in_entry_ = false;
      entry_done();
    }
    return true;
  }

  void tuple_done() {
    Entry& e = entry_;
    if (e.list.state != Member::kSet) return;
    ++e.list.value;
    if (templates()) {
      if (!tuple_ok_ || tuple_n_ != 3 || tuple_[0] > kU32 || tuple_[1] > 65535 ||
          tuple_[2] > 65535 || e.list.value > 65535) {
        e.list.state = Member::kBad;
        return;
      }
      e.fields.push_back({static_cast<std::uint32_t>(tuple_[0]),
                          static_cast<std::uint16_t>(tuple_[1]),
                          static_cast<std::uint16_t>(tuple_[2])});
    } else {
      if (!tuple_ok_ || tuple_n_ != 2) {
        e.list.state = Member::kBad;
        return;
      }
      e.rates.emplace_back(tuple_[0], tuple_[1]);
    }
  }

  std::optional<collector::SavedOwner> owner() const {
    const Entry& e = entry_;
    if (!e.exporter_set || !e.port.ok() || !e.version.ok() || !e.domain.ok()) return std::nullopt;
    auto addr = IpAddress::parse(e.exporter);
    if (!addr) return std::nullopt;
    collector::SavedOwner o;
    o.exporter = *addr;
    o.port = static_cast<std::uint16_t>(e.port.value);
    o.version = static_cast<std::uint8_t>(e.version.value);
    o.domain = static_cast<std::uint32_t>(e.domain.value);
    return o;
  }

  static TimePoint from_ms(std::uint64_t ms) {
    return TimePoint{std::chrono::duration_cast<Clock::duration>(
        std::chrono::milliseconds(static_cast<std::int64_t>(ms)))};
  }

  void entry_done() {
    Entry& e = entry_;
    const auto o = owner();
    const bool base = o && e.seen_ms.ok();
    if (templates()) {
      if (!base || !e.id.ok() || !e.scope_count.ok() || !e.options.ok() || !e.list.ok()) {
        skip_counted();
        return;
      }
      collector::SavedTemplate t;
      t.owner = *o;
      t.id = static_cast<std::uint16_t>(e.id.value);
      t.scope_count = static_cast<std::uint16_t>(e.scope_count.value);
      t.options = e.options.value != 0;
      t.seen = from_ms(e.seen_ms.value);
      t.fields = std::move(e.fields);
      out_.snapshot.templates.push_back(std::move(t));
    } else {
      const auto optional_ok = [](const Member& m) { return m.state != Member::kBad; };
      if (!base || !optional_ok(e.system_init_ms) || !optional_ok(e.default_rate) ||
          e.list.state == Member::kBad) {
        skip_counted();
        return;
      }
      collector::SavedDomain d;
      d.owner = *o;
      d.seen = from_ms(e.seen_ms.value);
      if (e.system_init_ms.ok()) d.system_init_ms = e.system_init_ms.value;
      if (e.default_rate.ok()) d.default_rate = e.default_rate.value;
      d.rates = std::move(e.rates);
      out_.snapshot.domains.push_back(std::move(d));
    }
  }

  // An entry that is not an object: skipped at once (its contents, if any, are ignored).
  void skip() { skip_counted(); }

  void skip_counted() {
    const bool t = templates();
    ++(t ? out_.skipped_templates : out_.skipped_domains);
    std::string& first = t ? first_template_ : first_domain_;
    if (first.empty()) first = fmt::format("{} {}", t ? "template" : "domain", position());
  }
  // The 1-based position of the entry being judged in its array.
  std::size_t position() const {
    return (templates() ? out_.snapshot.templates.size() + out_.skipped_templates
                        : out_.snapshot.domains.size() + out_.skipped_domains);
  }

  const std::int64_t max_ms_;
  TemplateFile& out_;
  int depth_ = 0;
  Top top_ = Top::kOther;
  Key key_ = Key::kOther;
  bool in_entry_ = false, list_key_ = false;
  Entry entry_;
  std::uint64_t tuple_[3] = {};
  std::size_t tuple_n_ = 0;
  bool tuple_ok_ = true;
  std::string first_template_, first_domain_;  // the first entry skipped in each list

 public:
  const std::string& first_skipped() const {
    return first_template_.empty() ? first_domain_ : first_template_;
  }
};

}  // namespace

namespace {

// Whatever nlohmann reads the text from: a string or a stream.
template <class Input>
std::optional<TemplateFile> parse(Input&& input, std::size_t size, TimePoint now,
                                  std::string& error) {
  error.clear();
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  TemplateFile file;
  Collector c(now_ms + kFutureSlackMs, file, size);
  const auto not_ours = [&](std::string why) {
    error = "not a flowd template file (" + std::move(why) + ")";
    return std::nullopt;
  };
  if (!json::sax_parse(std::forward<Input>(input), &c, json::input_format_t::json, true))
    return not_ours("not JSON");
  file.first_skipped = c.first_skipped();
  if (!c.top_is_object || !c.format_ok) return not_ours("no \"format\": \"flowd-templates\"");
  if (!c.version_ok) return not_ours("a version other than 1");
  if (!c.templates_array || !c.domains_array)
    return not_ours("no \"templates\" and \"domains\" arrays");
  return file;
}

}  // namespace

std::optional<TemplateFile> parse_template_file(std::string_view body, TimePoint now,
                                                std::string& error) {
  return parse(body, body.size(), now, error);
}

std::optional<TemplateFile> parse_template_file(std::istream& in, std::size_t size, TimePoint now,
                                                std::string& error) {
  return parse(in, size, now, error);
}

}  // namespace flowd::netflow
