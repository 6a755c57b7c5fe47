// SPDX-License-Identifier: Apache-2.0
#include "netlink/sock_diag.hpp"

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace flowd::netlink {
namespace {

// The kernel sends at most ~32 KiB per dump read (netlink_dump caps the skb at that size).
constexpr std::size_t kBufferSize = 64 * 1024;

IpAddress address_of(int family, const __be32* words) {
  IpAddress a;
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(words);
  if (family == AF_INET6) {
    static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, kMapped, 12) == 0) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), bytes + 12, 4);
    } else {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), bytes, 16);
    }
  } else {
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), bytes, 4);
  }
  return a;
}

}  // namespace

const char* tcp_state_name(std::uint8_t state) {
  static constexpr const char* kNames[] = {
      "unknown", "established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2",  "time-wait",
      "close",   "close-wait",  "last-ack", "listen",   "closing",    "new-syn-recv"};
  return state < std::size(kNames) ? kNames[state] : "unknown";
}

bool is_closing_state(std::uint8_t state) {
  switch (state) {
    case kTcpFinWait1:
    case kTcpFinWait2:
    case kTcpTimeWait:
    case kTcpClose:
    case kTcpCloseWait:
    case kTcpLastAck:
    case kTcpClosing:
      return true;
    default:
      return false;
  }
}

bool carries_data(std::uint8_t state, std::uint32_t inode) {
  switch (state) {
    case kTcpEstablished:
    case kTcpFinWait1:
    case kTcpCloseWait:
    case kTcpClosing:
    case kTcpLastAck:
      return true;
    case kTcpFinWait2:
      return inode != 0;
    default:
      return false;
  }
}

bool parse_diag_message(const nlmsghdr* nlh, std::size_t len, SockEntry& e, TcpDetails* d,
                        std::string& error) {
  if (len < sizeof(nlmsghdr) || nlh->nlmsg_len < sizeof(nlmsghdr) || nlh->nlmsg_len > len) {
    error = "truncated netlink message";
    return false;
  }
  if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
    error = "message shorter than inet_diag_msg";
    return false;
  }
  const auto* msg = static_cast<const inet_diag_msg*>(mnl_nlmsg_get_payload(nlh));
  if (msg->idiag_family != AF_INET && msg->idiag_family != AF_INET6) {
    error = "unknown address family " + std::to_string(msg->idiag_family);
    return false;
  }
  e = SockEntry{};
  e.local = address_of(msg->idiag_family, msg->id.idiag_src);
  e.remote = address_of(msg->idiag_family, msg->id.idiag_dst);
  e.local_port = ntohs(msg->id.idiag_sport);
  e.remote_port = ntohs(msg->id.idiag_dport);
  e.state = msg->idiag_state;
  e.retrans = msg->idiag_retrans;
  e.inode = msg->idiag_inode;
  e.cookie = static_cast<std::uint64_t>(msg->id.idiag_cookie[1]) << 32 | msg->id.idiag_cookie[0];
  e.uid = msg->idiag_uid;
  e.ifindex = msg->id.idiag_if;
  if (!d) return true;
  *d = TcpDetails{};
  // Attributes follow the aligned inet_diag_msg; walk them with explicit bounds checks.
  std::size_t off = NLMSG_LENGTH(sizeof(inet_diag_msg));
  off = NLMSG_ALIGN(off);
  const auto* base = reinterpret_cast<const std::uint8_t*>(nlh);
  while (off + sizeof(nlattr) <= nlh->nlmsg_len) {
    const auto* attr = reinterpret_cast<const nlattr*>(base + off);
    if (attr->nla_len < sizeof(nlattr) || off + attr->nla_len > nlh->nlmsg_len) {
      error = "malformed attribute";
      return false;
    }
    const std::uint8_t* payload = base + off + NLA_HDRLEN;
    std::size_t plen = attr->nla_len - NLA_HDRLEN;
    switch (attr->nla_type & NLA_TYPE_MASK) {
      case INET_DIAG_INFO:
        // Newer kernels send a longer tcp_info than our headers know: keep what we know.
        d->info_len = static_cast<std::uint32_t>(std::min(plen, sizeof(tcp_info)));
        std::memcpy(&d->info, payload, d->info_len);
        break;
      case INET_DIAG_CONG: {
        std::size_t n = std::min(plen, sizeof(d->congestion) - 1);
        std::memcpy(d->congestion, payload, n);
        d->congestion[n] = '\0';
        break;
      }
      case INET_DIAG_MEMINFO:
        if (plen >= sizeof(d->meminfo)) {
          std::memcpy(d->meminfo, payload, sizeof(d->meminfo));
          d->has_meminfo = true;
        }
        break;
      case INET_DIAG_SKMEMINFO:
        std::memcpy(d->skmem, payload, std::min(plen, sizeof(d->skmem)));
        d->has_skmem = plen > 0;
        break;
      default:
        break;
    }
    off += NLA_ALIGN(attr->nla_len);
  }
  return true;
}

SockDiag::SockDiag() : buf_(kBufferSize) {
  nl_ = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
  if (!nl_)
    throw std::system_error(errno, std::generic_category(), "netlink socket (NETLINK_SOCK_DIAG)");
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl_);
    throw std::system_error(err, std::generic_category(), "bind netlink socket");
  }
  port_id_ = mnl_socket_get_portid(nl_);
}

SockDiag::~SockDiag() {
  if (nl_) mnl_socket_close(nl_);
}

bool SockDiag::dump(const DumpRequest& req, const SockVisitor& visit, std::string& error) {
  count_ = 0;
  malformed_ = 0;
  // Each dump walks the kernel's whole established table, whatever the family: one walk for both
  // families (AF_UNSPEC, only the original TCPDIAG_GETSOCK request can ask for it) halves the cost.
  if (req.ipv4 && req.ipv6) return dump_family(AF_UNSPEC, req, visit, error);
  if (req.ipv4 && !dump_family(AF_INET, req, visit, error)) return false;
  if (req.ipv6 && !dump_family(AF_INET6, req, visit, error)) return false;
  return true;
}

bool SockDiag::lookup(const IpAddress& local, std::uint16_t local_port, const IpAddress& remote,
                      std::uint16_t remote_port, SockEntry& entry, TcpDetails& details) {
  lookup_failed_ = false;
  if (local.family != remote.family) return false;
  if (lookup_family(local.family, local, local_port, remote, remote_port, entry, details))
    return true;
  // An IPv4 connection may live on a dual-stack IPv6 socket, under its mapped address.
  return local.is_v4() &&
         lookup_family(AF_INET6, local, local_port, remote, remote_port, entry, details);
}

bool SockDiag::lookup_family(int family, const IpAddress& local, std::uint16_t local_port,
                             const IpAddress& remote, std::uint16_t remote_port, SockEntry& entry,
                             TcpDetails& details) {
  char out[256];
  nlmsghdr* nlh = mnl_nlmsg_put_header(out);
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = ++seq_;
  auto* r =
      static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  r->sdiag_family = static_cast<std::uint8_t>(family);
  r->sdiag_protocol = IPPROTO_TCP;
  r->idiag_states = ~0u;
  r->idiag_ext = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) |
                 (1 << (INET_DIAG_MEMINFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
  r->id.idiag_sport = htons(local_port);
  r->id.idiag_dport = htons(remote_port);
  r->id.idiag_cookie[0] = r->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  auto put = [&](__be32* words, const IpAddress& a) {
    auto* b = reinterpret_cast<std::uint8_t*>(words);
    if (family == AF_INET6 && a.is_v4()) {
      b[10] = b[11] = 0xff;
      std::memcpy(b + 12, a.bytes.data(), 4);
    } else {
      std::memcpy(b, a.bytes.data(), a.is_v4() ? 4 : 16);
    }
  };
  put(r->id.idiag_src, local);
  put(r->id.idiag_dst, remote);
  auto failed = [this] {
    lookup_failed_ = true;
    return false;
  };
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return failed();
  std::string why;
  while (true) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed();
    auto left = static_cast<int>(n);
    const auto* msg = reinterpret_cast<const nlmsghdr*>(buf_.data());
    for (; mnl_nlmsg_ok(msg, left); msg = mnl_nlmsg_next(msg, &left)) {
      if (msg->nlmsg_seq != seq_) continue;  // a late answer to an earlier request
      if (msg->nlmsg_type == NLMSG_ERROR) {
        // ENOENT: no such socket; anything else: the kernel was not asked properly.
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg));
        if (msg->nlmsg_len < mnl_nlmsg_size(sizeof *err) || err->error != -ENOENT) return failed();
        return false;
      }
      if (msg->nlmsg_type == SOCK_DIAG_BY_FAMILY)
        return parse_diag_message(msg, static_cast<std::size_t>(left), entry, &details, why) ||
               failed();
    }
  }
}

bool SockDiag::dump_family(int family, const DumpRequest& req, const SockVisitor& visit,
                           std::string& error) {
  char out[256];
  nlmsghdr* nlh = mnl_nlmsg_put_header(out);
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = ++seq_;
  std::uint8_t ext = 0;
  if (req.details)
    ext = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) |
          (1 << (INET_DIAG_MEMINFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
  if (family == AF_UNSPEC) {
    nlh->nlmsg_type = TCPDIAG_GETSOCK;
    auto* r = static_cast<inet_diag_req*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req)));
    r->idiag_family = AF_INET;  // ignored by the kernel for dumps: it asks for every family
    r->idiag_ext = ext;
    r->idiag_states = req.states;
  } else {
    nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
    auto* r =
        static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
    r->sdiag_family = static_cast<std::uint8_t>(family);
    r->sdiag_protocol = IPPROTO_TCP;
    r->idiag_states = req.states;
    r->idiag_ext = ext;
  }
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) {
    error = std::string("sock_diag request: ") + std::strerror(errno);
    return false;
  }
  SockEntry entry;
  TcpDetails details;
  std::string why;
  while (true) {
    ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      error = std::string("sock_diag receive: ") + std::strerror(errno);
      return false;
    }
    auto left = static_cast<int>(n);
    const auto* msg = reinterpret_cast<const nlmsghdr*>(buf_.data());
    while (mnl_nlmsg_ok(msg, left)) {
      if (msg->nlmsg_seq != seq_ || msg->nlmsg_pid != port_id_) {
        // A late answer to an earlier, abandoned request: not ours to parse.
      } else if (msg->nlmsg_type == NLMSG_DONE) {
        return true;
      } else if (msg->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(msg));
        error = std::string("sock_diag: ") + std::strerror(-err->error);
        return false;
      } else if (msg->nlmsg_type == SOCK_DIAG_BY_FAMILY || msg->nlmsg_type == TCPDIAG_GETSOCK) {
        if (parse_diag_message(msg, static_cast<std::size_t>(left), entry,
                               req.details ? &details : nullptr, why)) {
          ++count_;
          visit(entry, req.details && (details.info_len || details.has_skmem) ? &details : nullptr);
        } else {
          ++malformed_;
        }
      }
      msg = mnl_nlmsg_next(msg, &left);
    }
  }
}

}  // namespace flowd::netlink
