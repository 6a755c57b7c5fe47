// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/tc_attachment.hpp"

#include <bpf/libbpf.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "flowd/log.hpp"

namespace flowd::ebpf {

TcAttachment::TcAttachment(const std::string& interface, int prog_fd) : interface_(interface) {
  ifindex_ = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex_ == 0) throw std::runtime_error("[backend.ebpf] interfaces: no interface named '" + interface + "'");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
  int rc = bpf_tc_hook_create(&hook);
  if (rc == 0) {
    created_qdisc_ = true;
  } else if (rc != -EEXIST) {
    throw std::runtime_error("cannot create the clsact qdisc on " + interface + ": " + std::strerror(-rc));
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kFilterHandle,
              .priority = kFilterPriority);
  rc = bpf_tc_attach(&hook, &opts);
  if (rc != 0) {
    if (created_qdisc_) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
    throw std::runtime_error("cannot attach the marker to " + interface + " egress: " + std::strerror(-rc));
  }
  get_logger("backend.ebpf")
      ->info("marker attached to {} egress (filter handle 0x{:x} prio 0x{:x}{})", interface, kFilterHandle,
             kFilterPriority, created_qdisc_ ? ", clsact created" : ", existing clsact");
}

TcAttachment::~TcAttachment() {
  auto log = get_logger("backend.ebpf");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFilterHandle, .priority = kFilterPriority);
  int rc = bpf_tc_detach(&hook, &opts);
  if (rc != 0 && rc != -ENOENT && rc != -ENODEV)
    log->warn("cannot detach the marker from {}: {}", interface_, std::strerror(-rc));
  if (created_qdisc_) {
    // Only a clsact qdisc that flowd created goes away with it.
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    bpf_tc_hook_destroy(&hook);
  }
  log->info("marker detached from {}", interface_);
}

std::vector<std::string> interfaces_with_global_ipv6() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET6 || (a->ifa_flags & IFF_LOOPBACK)) continue;
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
    if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) || IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) continue;
    if (std::find(out.begin(), out.end(), a->ifa_name) == out.end()) out.emplace_back(a->ifa_name);
  }
  freeifaddrs(list);
  return out;
}

}  // namespace flowd::ebpf
