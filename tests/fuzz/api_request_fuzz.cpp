// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the body of POST /v1/flows (parse_flow_request): JSON shapes, fields, scitag.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/registry_loader.hpp"
#include "flowd/flow_id.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/api/flow_request.hpp"

namespace {

constexpr std::size_t kMaxFlows = 100;

const flowd::ScitagsRegistry& registry() {
  static const std::shared_ptr<const flowd::ScitagsRegistry> r = [] {
    std::string error;
    auto p = flowd::ScitagsRegistry::parse(flowd::registry_snapshot_json(), error);
    if (!p) __builtin_trap();  // the built-in snapshot must always parse
    return p;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto req = flowd::api::parse_flow_request(body, registry(), flowd::TimePoint{}, kMaxFlows);
  if (!req.body_ok && !req.flows.empty()) __builtin_trap();
  if (req.flows.size() > kMaxFlows) __builtin_trap();
  if (static_cast<std::size_t>(req.reason) >= flowd::api::kRejectCount) __builtin_trap();
  for (const auto& v : req.flows) {
    if (static_cast<std::size_t>(v.reason) >= flowd::api::kRejectCount) __builtin_trap();
    if (!v.flow) continue;
    const flowd::FlowID& f = *v.flow;
    if (f.experiment > flowd::kMaxExperiment || f.activity > flowd::kMaxActivity) __builtin_trap();
    if (f.src.family != f.dst.family || f.src.family == 0) __builtin_trap();
    if (f.src.is_unspecified() || f.dst.is_unspecified()) __builtin_trap();  // try15i C
    if (f.origin != flowd::FlowOrigin::kLocal) __builtin_trap();  // a report of this host's flow
  }
  return 0;
}
