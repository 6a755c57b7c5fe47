// SPDX-License-Identifier: Apache-2.0
// The netflow and sflow plugins' keys, and their values as one typed struct, checked once: a
// config that reaches the plugin's constructor is valid (fluent-bit's in_udp/udp_conf.c split).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/sflow.hpp"
#include "common/net/endpoint.hpp"
#include "common/net/prefix.hpp"
#include "flowd/config.hpp"
#include "flowd/scitags_registry.hpp"
#include "plugins/netflow/flow_rules.hpp"
#include "plugins/netflow/label_policy.hpp"

namespace flowd::netflow {

enum class Wire : std::uint8_t { kNetflow, kSflow };

// The key tables ([plugin.netflow], [plugin.sflow]); docs/configuration.md is generated from them.
std::span<const KeySpec> netflow_keys();
std::span<const KeySpec> sflow_keys();

struct NetflowConfig {
  Wire wire = Wire::kNetflow;
  std::string section;                    // "plugin.netflow", for messages
  std::vector<net::Endpoint> listen;      // UDP
  std::vector<net::Endpoint> tcp_listen;  // IPFIX over TCP (netflow only)
  std::size_t max_tcp_sessions = 256;
  std::size_t max_tcp_sessions_per_exporter = 16;  // per peer address
  std::chrono::seconds tcp_idle_timeout{300};      // 0: never
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds template_save_interval{300};  // netflow only; 0: on stop only
  std::string dump;                                  // path; empty: no dump
  int rcvbuf = 0;                                    // bytes
  std::size_t workers = 1;
  std::size_t max_flows = 0;
  collector::DecoderLimits limits;      // template timeout, count and byte bounds, apply_sampling
  collector::SflowLimits sflow_limits;  // apply_sampling
  std::vector<FlowRule> rules;
  LabelTrust label_trust = LabelTrust::kRegistered;
  std::vector<net::Prefix> label_networks;
  std::vector<net::Prefix> allow;  // empty: every exporter
  // Exporters (address, domain) or sFlow agents (address, sub-agent) with series of their own.
  std::size_t max_exporter_series = 64;

  // Reads and checks a [plugin.netflow] (kNetflow) or [plugin.sflow] (kSflow) section: listen
  // endpoints, CIDR lists and rules (whose experiment and activity names `registry` resolves).
  // Throws ConfigError("[<section>] <key>: ...") on the first bad value.
  static NetflowConfig from(const Section& section, Wire wire, const ScitagsRegistry& registry);
};

}  // namespace flowd::netflow
