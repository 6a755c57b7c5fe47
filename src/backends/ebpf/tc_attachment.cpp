// SPDX-License-Identifier: Apache-2.0
#include "backends/ebpf/tc_attachment.hpp"

#include <bpf/libbpf.h>
#include <ifaddrs.h>
#include <libmnl/libmnl.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "flowd/log.hpp"

namespace flowd::ebpf {
namespace {

// One rtnetlink dump of the tc objects (`type`: RTM_GETTFILTER, RTM_GETQDISC) of `ifindex` under
// `parent` (0: any), each message to `cb`; false when the kernel could not be asked.
bool dump_tc(std::uint16_t type, int ifindex, std::uint32_t parent, mnl_cb_t cb, void* data) {
  mnl_socket* nl = mnl_socket_open(NETLINK_ROUTE);
  if (!nl) return false;
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = 1;
  auto* tcm = static_cast<tcmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
  tcm->tcm_family = AF_UNSPEC;
  tcm->tcm_ifindex = ifindex;
  tcm->tcm_parent = parent;
  bool ok = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == 0 &&
            mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) >= 0;
  while (ok) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n <= 0) {
      ok = false;
      break;
    }
    int rc =
        mnl_cb_run(buf.data(), static_cast<std::size_t>(n), 1, mnl_socket_get_portid(nl), cb, data);
    if (rc == MNL_CB_STOP) break;
    if (rc < 0) ok = false;
  }
  mnl_socket_close(nl);
  return ok;
}

// Filters on one side of the interface's clsact qdisc (RTM_GETTFILTER dump, as `tc filter show dev
// X egress` does); -1 when the kernel could not be asked.
int filters_on(int ifindex, unsigned side) {
  int count = 0;
  const bool ok = dump_tc(
      RTM_GETTFILTER, ifindex, TC_H_MAKE(TC_H_CLSACT, side),
      [](const nlmsghdr*, void* data) {
        ++*static_cast<int*>(data);
        return MNL_CB_OK;
      },
      &count);
  return ok ? count : -1;
}

// Filters on either side of the clsact (0 also when there is no clsact); -1 when unknown.
int all_filters_on(int ifindex) {
  const int ingress = filters_on(ifindex, TC_H_MIN_INGRESS);
  const int egress = filters_on(ifindex, TC_H_MIN_EGRESS);
  return ingress < 0 || egress < 0 ? -1 : ingress + egress;
}

}  // namespace

int has_clsact(int ifindex) {
  struct Found {
    int ifindex;
    bool clsact = false;
  } found{ifindex};
  // Older kernels dump every interface's qdiscs: the callback checks the index.
  const bool ok = dump_tc(
      RTM_GETQDISC, ifindex, 0,
      [](const nlmsghdr* m, void* data) {
        auto* f = static_cast<Found*>(data);
        const auto* tcm = static_cast<const tcmsg*>(mnl_nlmsg_get_payload(m));
        if (tcm->tcm_ifindex != f->ifindex || tcm->tcm_parent != TC_H_CLSACT) return MNL_CB_OK;
        const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(m));
        for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(m, sizeof(*tcm)));
             mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
             attr = mnl_attr_next(attr))
          if (mnl_attr_get_type(attr) == TCA_KIND &&
              std::strcmp(mnl_attr_get_str(attr), "clsact") == 0)
            f->clsact = true;
        return MNL_CB_OK;
      },
      &found);
  return ok ? (found.clsact ? 1 : 0) : -1;
}

namespace {

// Detaches flowd's filter from `ifindex` and, when `remove_clsact`, the clsact qdisc too if no
// other filter sits on it (removing the qdisc removes them all). Returns the note for the log.
std::string detach_hook(const std::string& interface, int ifindex, bool remove_clsact) {
  auto log = get_logger("backend.ebpf");
  // An interface that is gone took its clsact and filters with it: nothing to ask the kernel.
  char name[IF_NAMESIZE];
  if (!if_indextoname(static_cast<unsigned>(ifindex), name)) return "interface gone";
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFilterHandle, .priority = kFilterPriority);
  int rc = bpf_tc_detach(&hook, &opts);
  if (rc != 0 && rc != -ENOENT && rc != -ENODEV)
    log->warn("cannot detach the marker from {}: {}", interface, std::strerror(-rc));
  if (!remove_clsact) return {};
  int others = -1, ingress = filters_on(ifindex, TC_H_MIN_INGRESS),
      egress = filters_on(ifindex, TC_H_MIN_EGRESS);
  if (ingress >= 0 && egress >= 0) others = ingress + egress;
  if (others == 0) {
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    return bpf_tc_hook_destroy(&hook) == 0 ? "clsact removed" : "";
  }
  log->info("leaving the clsact qdisc on {}: {}", interface,
            others < 0 ? "its filters could not be listed" : "other filters use it");
  return "clsact kept: other filters use it";
}

}  // namespace

TcAttachment::TcAttachment(const std::string& interface, int prog_fd,
                           std::optional<bool> recorded_created)
    : interface_(interface) {
  ifindex_ = static_cast<int>(if_nametoindex(interface.c_str()));
  if (ifindex_ == 0)
    throw std::runtime_error("[backend.ebpf] interfaces: no interface named '" + interface + "'");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
  int rc = bpf_tc_hook_create(&hook);
  bool replaced_stale = false;  // a killed flowd's filter was there at start
  if (rc == 0) {
    created_qdisc_ = true;
  } else if (rc != -EEXIST) {
    throw std::runtime_error("cannot create the clsact qdisc on " + interface + ": " +
                             std::strerror(-rc));
  } else {
    // flowd's own filter already there: a flowd that was killed left it (a live one holds the
    // interface's MarkerLock, so this one would not have come this far). Whether that flowd created
    // the clsact is in its record; without one the clsact is taken for the admin's and kept.
    // Without flowd's filter, a recorded clsact with no filter at all is one a flowd killed before
    // its filter went on made (the record is written first, try15h D6).
    LIBBPF_OPTS(bpf_tc_opts, query, .handle = kFilterHandle, .priority = kFilterPriority);
    replaced_stale = bpf_tc_query(&hook, &query) == 0;
    created_qdisc_ =
        recorded_created.value_or(false) && (replaced_stale || all_filters_on(ifindex_) == 0);
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
              .handle = kFilterHandle, .priority = kFilterPriority);
  rc = bpf_tc_attach(&hook, &opts);
  if (rc != 0) {
    if (created_qdisc_ && !replaced_stale) {
      hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
      bpf_tc_hook_destroy(&hook);
    }
    throw std::runtime_error("cannot attach the marker to " + interface +
                             " egress: " + std::strerror(-rc));
  }
  std::string how = created_qdisc_ && !replaced_stale ? ", clsact created" : ", existing clsact";
  if (replaced_stale)
    how = std::string(", replacing the filter of a flowd that did not stop cleanly (") +
          (created_qdisc_                 ? "its clsact goes at stop"
           : recorded_created.has_value() ? "the clsact was there before it: kept at stop"
                                          : "no record of who created the clsact: kept at stop") +
          ")";
  get_logger("backend.ebpf")
      ->info("marker attached to {} egress (filter handle 0x{:x} prio 0x{:x}{})", interface,
             kFilterHandle, kFilterPriority, how);
}

void TcAttachment::replace(int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
              .handle = kFilterHandle, .priority = kFilterPriority);
  // Only the filter removed (`tc filter del dev X egress`): BPF_TC_F_REPLACE makes it again without
  // an error, so whether it was there is asked first, for the warning below.
  const bool was_gone = has_marker_filter(ifindex_) == 0;
  int rc = bpf_tc_attach(&hook, &opts);
  bool recreated = rc == 0 && was_gone;
  if (rc != 0 && has_marker_filter(ifindex_) == 0) {
    // Somebody removed the clsact (`tc qdisc del dev X clsact`: the kernel answers EINVAL, no
    // qdisc to add a filter to) or our filter: made again, as at start. A clsact made here is
    // flowd's, removed at stop with the filter.
    if (int made = bpf_tc_hook_create(&hook); made == 0) {
      created_qdisc_ = true;
    } else if (made != -EEXIST) {
      throw std::runtime_error("cannot create the clsact qdisc on " + interface_ +
                               " again: " + std::strerror(-made));
    }
    rc = bpf_tc_attach(&hook, &opts);
    recreated = rc == 0;
  }
  if (rc != 0)
    throw std::runtime_error("cannot replace the marker on " + interface_ +
                             " egress: " + std::strerror(-rc));
  auto log = get_logger("backend.ebpf");
  if (recreated)
    log->warn(
        "the marker's filter on {} egress was gone (its clsact qdisc or the filter removed by "
        "somebody else, e.g. tc qdisc del dev {} clsact or tc filter del): attached again (filter "
        "handle 0x{:x} "
        "prio "
        "0x{:x}{})",
        interface_, interface_, kFilterHandle, kFilterPriority,
        created_qdisc_ ? ", clsact created" : "");
  else
    log->info("marker replaced in place on {} egress (filter handle 0x{:x} prio 0x{:x})",
              interface_, kFilterHandle, kFilterPriority);
}

bool TcAttachment::present() const {
  return has_marker_filter(ifindex_) != 0;
}

TcAttachment::~TcAttachment() {
  std::string note = detach_hook(interface_, ifindex_, created_qdisc_);
  const std::string why = note == "interface gone" ? "the interface is gone" : detach_reason_;
  get_logger("backend.ebpf")
      ->info("marker detached from {}{}{}", interface_,
             why.empty() ? std::string() : fmt::format(" ({})", why),
             note == "clsact removed" ? ", clsact removed" : "");
}

int has_marker_filter(int ifindex) {
  char name[IF_NAMESIZE];
  if (ifindex <= 0 || !if_indextoname(static_cast<unsigned>(ifindex), name)) return 0;
  // No filter on the egress side (no clsact at all, after kill -9 and its removal, or somebody's
  // `tc qdisc del`): answered without bpf_tc_query, whose question to a missing clsact makes the
  // kernel answer "Parent Qdisc doesn't exists", which libbpf prints as a raw line of its own.
  if (filters_on(ifindex, TC_H_MIN_EGRESS) == 0) return 0;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = kFilterHandle, .priority = kFilterPriority);
  const int rc = bpf_tc_query(&hook, &query);
  if (rc == 0) return 1;
  // No clsact (EINVAL), no such filter (ENOENT); anything else is not an answer.
  return rc == -ENOENT || rc == -EINVAL || rc == -ENODEV ? 0 : -1;
}

RemovedHook remove_marker_hook(int ifindex, bool created_clsact) {
  RemovedHook r;
  char name[IF_NAMESIZE];
  if (ifindex <= 0 || !if_indextoname(static_cast<unsigned>(ifindex), name)) {
    r.note = "interface gone";
    r.removed = true;
    return r;
  }
  r.interface_now = name;
  // The filter is asked for first: an index the kernel gave to another interface since has none of
  // ours, and its clsact is not flowd's to remove.
  if (has_marker_filter(ifindex) == 0) {
    r.note = kNoMarkerFilter;
    r.removed = true;
    // A clsact the killed flowd recorded as its own before making it, with no filter on it: its
    // filter never went on.
    if (created_clsact && has_clsact(ifindex) == 1 && all_filters_on(ifindex) == 0) {
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
                  .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
      if (bpf_tc_hook_destroy(&hook) == 0) r.note = kEmptyClsactRemoved;
    }
    return r;
  }
  r.note = detach_hook(r.interface_now, ifindex, created_clsact);
  if (has_marker_filter(ifindex) != 0) {
    r.note = "the filter is still there (the kernel refused to remove it, see above)";
    return r;
  }
  r.removed = true;
  if (r.note.empty())
    r.note = created_clsact ? "clsact not removed" : "clsact kept: flowd did not create it";
  return r;
}

std::vector<std::string> interfaces_with_global_ipv6() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET6 || (a->ifa_flags & IFF_LOOPBACK))
      continue;
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
    if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr) || IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) continue;
    if (std::find(out.begin(), out.end(), a->ifa_name) == out.end()) out.emplace_back(a->ifa_name);
  }
  freeifaddrs(list);
  return out;
}

}  // namespace flowd::ebpf
