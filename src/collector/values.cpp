// SPDX-License-Identifier: Apache-2.0
// Times flowd derives for a record: absolute flowStart/End Milli- and Microseconds from the
// relative elements a template carries (positions found once per template, relative_time.hpp for
// the arithmetic).
#include "collector/decoder_state.hpp"
#include "collector/ie_ids.hpp"
#include "collector/relative_time.hpp"

namespace flowd::collector {
namespace {

// A time flowd derived (not exported): `raw` keeps the value's own unit so the record stays exact.
void add_time_field(FieldWriter& w, std::uint16_t id, TimePoint t, TimePrecision precision,
                    std::uint64_t raw) {
  Field& f = w.next();
  f.pen = 0;
  f.id = id;
  f.value.kind = ValueKind::kDateTime;
  f.value.precision = precision;
  f.value.u = raw;
  f.value.time = t;
}

// flowStartSysUpTime/flowEndSysUpTime -> flowStartMilliseconds/flowEndMilliseconds;
// flowStartDeltaMicroseconds/flowEndDeltaMicroseconds -> flowStartMicroseconds/flowEndMicroseconds.
struct TimeRule {
  std::uint16_t relative, absolute;
};
constexpr TimeRule kTimeRules[RelativeTimes::kRules] = {
    {ie::kFlowStartSysUpTime, ie::kFlowStartMilliseconds},
    {ie::kFlowEndSysUpTime, ie::kFlowEndMilliseconds},
    {ie::kFlowStartDeltaMicroseconds, ie::kFlowStartMicroseconds},
    {ie::kFlowEndDeltaMicroseconds, ie::kFlowEndMicroseconds},
};

}  // namespace

RelativeTimes relative_times_of(const std::vector<FieldSpec>& fields) {
  RelativeTimes rt;
  for (std::size_t i = 0; i < fields.size() && i < 0x7FFF; ++i) {
    const FieldSpec& f = fields[i];
    if (f.pen != 0) continue;
    for (std::size_t r = 0; r < RelativeTimes::kRules; ++r) {
      if (f.id == kTimeRules[r].relative && rt.relative[r] < 0)
        rt.relative[r] = static_cast<std::int16_t>(i);
      if (f.id == kTimeRules[r].absolute) rt.absolute[r] = true;
    }
  }
  // An element the exporter sent itself is never derived (nor overwritten).
  for (std::size_t r = 0; r < RelativeTimes::kRules; ++r)
    if (rt.absolute[r]) rt.relative[r] = -1;
  return rt;
}

void derive_absolute_times(FieldWriter& w, const TimeBase& base, const RelativeTimes& where) {
  // Values first: adding a field may move the vector the fields live in.
  std::optional<std::uint64_t> value[RelativeTimes::kRules];
  for (std::size_t r = 0; r < RelativeTimes::kRules; ++r) {
    if (where.relative[r] < 0) continue;
    const Field& f = w[static_cast<std::size_t>(where.relative[r])];
    if (f.value.kind == ValueKind::kUnsigned) value[r] = f.value.u;
  }
  for (std::size_t r = 0; r < 2; ++r) {
    if (!value[r] || !base.uptime_ms) continue;
    const std::int64_t ms = uptime_to_unix_ms(base.export_ms, *base.uptime_ms, *value[r]);
    add_time_field(w, kTimeRules[r].absolute, from_millis(ms), TimePrecision::kMilliseconds,
                   static_cast<std::uint64_t>(ms));
  }
  for (std::size_t r = 2; r < RelativeTimes::kRules; ++r) {
    if (!value[r] || !base.export_secs) continue;
    const TimePoint t =
        from_delta_microseconds(*base.export_secs, static_cast<std::uint32_t>(*value[r]));
    add_time_field(
        w, kTimeRules[r].absolute, t, TimePrecision::kMicroseconds,
        static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count()));
  }
}

}  // namespace flowd::collector
