// SPDX-License-Identifier: Apache-2.0
#include "flowd/scitags_registry.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "flowd/flow_id.hpp"

namespace flowd {
namespace {

std::optional<unsigned> as_number(std::string_view s, unsigned max) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
  return v;
}

bool is_number(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

std::shared_ptr<const ScitagsRegistry> ScitagsRegistry::parse(std::string_view json,
                                                              std::string& error) {
  // No exceptions for bad input: parse into `discarded` and check every type by hand.
  auto doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (doc.is_discarded()) {
    error = "not valid JSON";
    return nullptr;
  }
  if (!doc.is_object() || !doc.contains("experiments") || !doc["experiments"].is_array()) {
    error = "no \"experiments\" array";
    return nullptr;
  }
  auto reg = std::make_shared<ScitagsRegistry>();
  if (auto m = doc.find("modified"); m != doc.end() && m->is_string())
    reg->modified_ = m->get<std::string>();
  std::size_t index = 0;
  for (const auto& e : doc["experiments"]) {
    auto where = fmt::format("experiments[{}]", index++);
    if (!e.is_object()) {
      error = where + " is not an object";
      return nullptr;
    }
    auto name = e.find("expName");
    auto id = e.find("expId");
    if (name == e.end() || !name->is_string() || id == e.end() || !id->is_number_unsigned()) {
      error = where + ": needs a string \"expName\" and a non-negative integer \"expId\"";
      return nullptr;
    }
    auto exp_id = id->get<std::uint64_t>();
    if (exp_id > kMaxExperiment) {
      error = fmt::format("{}: expId {} is over {}", where, exp_id, kMaxExperiment);
      return nullptr;
    }
    Experiment ex;
    ex.name = name->get<std::string>();
    if (auto acts = e.find("activities"); acts != e.end()) {
      if (!acts->is_array()) {
        error = where + ": \"activities\" is not an array";
        return nullptr;
      }
      std::size_t ai = 0;
      for (const auto& a : *acts) {
        auto awhere = fmt::format("{}.activities[{}]", where, ai++);
        if (!a.is_object()) {
          error = awhere + " is not an object";
          return nullptr;
        }
        auto an = a.find("activityName");
        auto aid = a.find("activityId");
        if (an == a.end() || !an->is_string() || aid == a.end() || !aid->is_number_unsigned() ||
            aid->get<std::uint64_t>() > kMaxActivity) {
          error =
              fmt::format("{}: needs a string \"activityName\" and an integer \"activityId\" 0..{}",
                          awhere, kMaxActivity);
          return nullptr;
        }
        auto act = static_cast<unsigned>(aid->get<std::uint64_t>());
        ex.activities[an->get<std::string>()] = act;
        ex.activity_names.emplace(act, an->get<std::string>());
      }
    }
    reg->by_name_[ex.name] = static_cast<unsigned>(exp_id);
    reg->by_id_[static_cast<unsigned>(exp_id)] = std::move(ex);
  }
  if (reg->by_id_.empty()) {
    error = "no experiments";
    return nullptr;
  }
  return reg;
}

namespace {
// "Data_Challenge" -> "Data Challenge": '_' for ' ', as a pipe line writes a name (one field of a
// whitespace-separated line), so that a name is spelled one way in rules, the CLI and the pipe.
std::string spaced(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}
}  // namespace

std::optional<unsigned> ScitagsRegistry::experiment_id(std::string_view s) const {
  if (is_number(s)) return as_number(s, kMaxExperiment);
  auto it = by_name_.find(s);
  if (it == by_name_.end() && s.find('_') != std::string_view::npos) it = by_name_.find(spaced(s));
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::optional<unsigned> ScitagsRegistry::activity_id(unsigned experiment,
                                                     std::string_view s) const {
  if (is_number(s)) return as_number(s, kMaxActivity);
  auto e = by_id_.find(experiment);
  if (e == by_id_.end()) return std::nullopt;
  auto it = e->second.activities.find(s);
  if (it == e->second.activities.end() && s.find('_') != std::string_view::npos)
    it = e->second.activities.find(spaced(s));
  if (it == e->second.activities.end()) return std::nullopt;
  return it->second;
}

bool ScitagsRegistry::registered(unsigned experiment, unsigned activity) const {
  auto e = by_id_.find(experiment);
  return e != by_id_.end() && e->second.activity_names.count(activity) > 0;
}

std::size_t ScitagsRegistry::pair_count() const {
  std::size_t n = 0;
  for (const auto& [id, e] : by_id_) n += e.activity_names.size();
  return n;
}

std::string ScitagsRegistry::experiment_name(unsigned id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? std::to_string(id) : it->second.name;
}

std::string ScitagsRegistry::activity_name(unsigned experiment, unsigned id) const {
  auto e = by_id_.find(experiment);
  if (e == by_id_.end()) return std::to_string(id);
  auto it = e->second.activity_names.find(id);
  return it == e->second.activity_names.end() ? std::to_string(id) : it->second;
}

}  // namespace flowd
