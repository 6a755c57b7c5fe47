// SPDX-License-Identifier: Apache-2.0
// Reading one series out of a prometheus::Registry, for the unit tests.
#pragma once

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <map>
#include <optional>
#include <string>

namespace flowd::test {

// The value of a counter or gauge series in `reg`, or nullopt if there is no such series.
inline std::optional<double> metric_value(prometheus::Registry& reg, const std::string& name,
                                          const std::map<std::string, std::string>& labels) {
  for (const auto& fam : reg.Collect()) {
    if (fam.name != name) continue;
    for (const auto& m : fam.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : m.label) have[l.name] = l.value;
      if (have != labels) continue;
      return fam.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return std::nullopt;
}

}  // namespace flowd::test
