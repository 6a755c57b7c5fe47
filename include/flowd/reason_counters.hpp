// SPDX-License-Identifier: Apache-2.0
// One Prometheus counter family with a series per reason of a closed enum: what each parser and
// listener counts when it refuses input. The label values are the enum's to_string() names, so a
// series exists (at 0) for every reason from the start and no value comes from the input.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>
#include <string>

namespace flowd {

// `Reason` is an enum with values 0..N-1 and a `to_string(Reason)` found by argument-dependent
// lookup (returning something a std::string can be built from).
template <typename Reason, std::size_t N>
class ReasonCounters {
 public:
  // Registers `name` (a `_total` counter) in `registry` with the `label` ("reason") taking each
  // reason's name, plus the `constant` labels on every series. Throws what prometheus-cpp throws
  // for an invalid name or a family registered twice with other labels.
  ReasonCounters(prometheus::Registry& registry, const std::string& name, const std::string& help,
                 const std::string& label = "reason", const prometheus::Labels& constant = {}) {
    auto& family = prometheus::BuildCounter().Name(name).Help(help).Register(registry);
    for (std::size_t i = 0; i < N; ++i) {
      prometheus::Labels labels = constant;
      labels[label] = std::string(to_string(static_cast<Reason>(i)));
      counters_[i] = &family.Add(labels);
    }
  }

  // Adds `n` (default 1) to `reason`'s series; a value outside 0..N-1 is ignored (never UB).
  void add(Reason reason, double n = 1) {
    auto i = static_cast<std::size_t>(reason);
    if (i < N) counters_[i]->Increment(n);
  }
  double value(Reason reason) const {
    auto i = static_cast<std::size_t>(reason);
    return i < N ? counters_[i]->Value() : 0;
  }

 private:
  std::array<prometheus::Counter*, N> counters_{};
};

}  // namespace flowd
