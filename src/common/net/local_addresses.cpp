// SPDX-License-Identifier: Apache-2.0
#include "common/net/local_addresses.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace flowd::net {

IpAddress unmapped(const IpAddress& a) {
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!a.is_v6() || std::memcmp(a.bytes.data(), kMapped, sizeof kMapped) != 0) return a;
  return IpAddress::v4(std::uint32_t{a.bytes[12]} << 24 | std::uint32_t{a.bytes[13]} << 16 |
                       std::uint32_t{a.bytes[14]} << 8 | a.bytes[15]);
}

LocalAddresses::LocalAddresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    failed_ = true;
    return;
  }
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    IpAddress a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr,
                  16);
    } else {
      continue;
    }
    addrs_.push_back(a);
  }
  ::freeifaddrs(list);
}

bool LocalAddresses::contains(const IpAddress& raw) const {
  if (failed_) return true;
  const IpAddress a = unmapped(raw);
  if (a.is_v4() && a.bytes[0] == 127) return true;
  return std::find(addrs_.begin(), addrs_.end(), a) != addrs_.end();
}

}  // namespace flowd::net
