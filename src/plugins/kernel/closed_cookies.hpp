// SPDX-License-Identifier: Apache-2.0
// The socket cookies of the connections whose CLOSE the kernel plugin read last (at most
// kCapacity, the oldest forgotten first). The tracepoint fires before tcp_set_state() unhashes the
// socket, so a sock_diag dump made just after the record was read may still list the socket: the
// resync must not take it for a connection the kernel did not report (a start and an end at the
// dump's time, try15f D1). A cookie is unique per boot, so a remembered one never names a live
// socket; the bound only limits how far back the resync is protected (a dump follows a read of
// the ring within milliseconds, far fewer closes than kCapacity).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <unordered_set>

namespace flowd::kernel {

class ClosedCookies {
 public:
  static constexpr std::size_t kCapacity = 16384;

  // Remembers `cookie` (0, no cookie: nothing).
  void add(std::uint64_t cookie) {
    if (cookie == 0 || !set_.insert(cookie).second) return;
    std::uint64_t& slot = order_[next_];
    if (slot != 0) set_.erase(slot);
    slot = cookie;
    next_ = (next_ + 1) % kCapacity;
  }
  bool contains(std::uint64_t cookie) const { return cookie != 0 && set_.count(cookie) != 0; }
  std::size_t size() const { return set_.size(); }

 private:
  std::unordered_set<std::uint64_t> set_;
  std::array<std::uint64_t, kCapacity> order_{};  // insertion order, a ring; 0: free
  std::size_t next_ = 0;
};

}  // namespace flowd::kernel
