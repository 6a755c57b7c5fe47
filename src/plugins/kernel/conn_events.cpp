// SPDX-License-Identifier: Apache-2.0
#include "plugins/kernel/conn_events.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "flowd/log.hpp"
#include "flowd_conn.skel.h"

namespace flowd::kernel {
namespace {

// A tracing program needs CAP_BPF and CAP_PERFMON (Linux 5.8), or CAP_SYS_ADMIN.
std::string missing_capabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return {};
  auto has = [&](int cap) { return (data[cap / 32].effective >> (cap % 32)) & 1u; };
  if (has(CAP_SYS_ADMIN)) return {};
  std::string missing;
  if (!has(CAP_BPF)) missing += "CAP_BPF and ";
  if (!has(CAP_PERFMON)) missing += "CAP_PERFMON and ";
  if (!missing.empty()) missing.resize(missing.size() - 5);
  return missing;
}

std::string why(const char* step, int err) {
  std::string reason = std::string(step) + ": " + std::strerror(err);
  if (auto caps = missing_capabilities(); !caps.empty())
    return reason + " (flowd lacks " + caps + ", or CAP_SYS_ADMIN)";
  struct stat st;
  if (::stat("/sys/kernel/btf/vmlinux", &st) != 0)
    return reason + " (the kernel has no BTF: /sys/kernel/btf/vmlinux is missing, " +
           "CONFIG_DEBUG_INFO_BTF)";
  return reason;
}

// libbpf's own messages while loading ("Couldn't load trivial BPF program...", the verifier's log)
// go to the debug log instead of stderr: the one line the plugin logs says why. Components start
// one after the other on the main thread, so the previous callback (the ebpf backend's) is put
// back before anyone else loads.
int libbpf_to_debug(enum libbpf_print_level, const char* fmt, va_list args) {
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  std::string_view line(buf, static_cast<std::size_t>(std::clamp(n, 0, int{sizeof buf} - 1)));
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  get_logger("bpf")->debug("{}", line);
  return 0;
}

class QuietLibbpf {
 public:
  QuietLibbpf() : previous_(libbpf_set_print(libbpf_to_debug)) {}
  ~QuietLibbpf() { libbpf_set_print(previous_); }
  QuietLibbpf(const QuietLibbpf&) = delete;
  QuietLibbpf& operator=(const QuietLibbpf&) = delete;

 private:
  libbpf_print_fn_t previous_;
};

}  // namespace

std::uint32_t own_netns_inode() {
  struct stat st;
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return static_cast<std::uint32_t>(st.st_ino);
}

int ConnEvents::load(std::uint32_t ring_bytes, std::uint32_t netns,
                     const std::optional<FirstPacketMarks>& marks, bool owners, bool cookie) {
  skel_ = flowd_conn__open();
  if (!skel_) return -errno;
  skel_->rodata->cfg_netns = netns;
  skel_->rodata->cfg_cookie = cookie ? 1 : 0;
  skel_->rodata->cfg_owners = owners ? 1 : 0;
  int err = bpf_map__set_max_entries(skel_->maps.flowd_conn_events, ring_bytes);
  if (err == 0 && marks) {
    // The marker's own map: what this program writes, the marker's tc program reads.
    skel_->rodata->cfg_mark = 1;
    skel_->rodata->cfg_has_default = marks->default_label ? 1 : 0;
    skel_->rodata->cfg_default_label = marks->default_label.value_or(0);
    err = bpf_map__reuse_fd(skel_->maps.flowd_flow_labels, marks->flow_map_fd);
    if (err == 0)
      err = bpf_map__set_max_entries(
          skel_->maps.flowd_port_labels,
          static_cast<std::uint32_t>(std::max<std::size_t>(marks->port_labels.size(), 1)));
    if (err == 0)
      err = marks->own_marks_fd >= 0
                ? bpf_map__reuse_fd(skel_->maps.flowd_own_marks, marks->own_marks_fd)
                : bpf_map__set_max_entries(skel_->maps.flowd_own_marks,
                                           std::max<std::uint32_t>(marks->own_marks_size, 1));
    if (err == 0)
      err = bpf_map__set_max_entries(
          skel_->maps.flowd_unmarked_networks,
          static_cast<std::uint32_t>(std::max<std::size_t>(marks->unmarked_networks.size(), 1)));
  }
  if (err == 0) err = flowd_conn__load(skel_);
  if (err != 0) {
    flowd_conn__destroy(skel_);
    skel_ = nullptr;
  }
  return err;
}

ConnEvents::ConnEvents(std::uint32_t ring_bytes, std::uint32_t netns, Handler handler,
                       const std::optional<FirstPacketMarks>& marks, bool owners)
    : handler_(std::move(handler)),
      ncpu_(std::max(libbpf_num_possible_cpus(), 1)),
      marking_(marks.has_value()) {
  QuietLibbpf quiet;
  // With the socket cookie first; a kernel that refuses it to tracing programs (before 5.12) gets
  // the program without it.
  int err = load(ring_bytes, netns, marks, owners, true);
  if (err != 0 && load(ring_bytes, netns, marks, owners, false) == 0) err = 0;
  if (err != 0) throw LoadError(why("loading the BPF program", -err));
  if (marks)
    for (const auto& [port, label] : marks->port_labels)
      if (bpf_map_update_elem(bpf_map__fd(skel_->maps.flowd_port_labels), &port, &label, BPF_ANY) !=
          0) {
        err = errno;
        flowd_conn__destroy(skel_);
        throw LoadError(why("filling the port rules' map", err));
      }
  if (marks)
    for (const auto& [addr, length] : marks->unmarked_networks) {
      flowd_conn_network key{};
      key.prefixlen = length;
      std::memcpy(key.addr, addr.data(), sizeof key.addr);
      const std::uint8_t one = 1;
      if (bpf_map_update_elem(bpf_map__fd(skel_->maps.flowd_unmarked_networks), &key, &one,
                              BPF_ANY) != 0) {
        err = errno;
        flowd_conn__destroy(skel_);
        throw LoadError(why("filling the unmarked networks' map", err));
      }
    }
  err = flowd_conn__attach(skel_);
  if (err != 0) {
    flowd_conn__destroy(skel_);
    throw LoadError(why("attaching to sock:inet_sock_set_state", -err));
  }
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.flowd_conn_events), &ConnEvents::on_record, this,
                           nullptr);
  if (!ring_) {
    err = errno;
    flowd_conn__destroy(skel_);
    throw LoadError(why("opening the ring buffer", err));
  }
}

ConnEvents::~ConnEvents() {
  ring_buffer__free(ring_);
  flowd_conn__destroy(skel_);
}

int ConnEvents::fd() const {
  return ring_buffer__epoll_fd(ring_);
}

void ConnEvents::detach() {
  flowd_conn__detach(skel_);
}

// The ring wakes its reader only when a record is committed at the position the reader has
// published (consumer_pos): a reader that caught up is asleep and waits for that very record. The
// reader (libbpf's ring_buffer__consume, as in Debian 12's libbpf 1.1) stores consumer_pos with a
// release and then loads producer_pos with an acquire, and a store followed by a load may be
// reordered: the reader can miss a record just reserved, while the program, committing it, still
// sees the old consumer_pos and sends no wakeup. The record then waits in the ring until some later
// record wakes the reader: at the end of a burst, a connection's end stays unread for good (seen as
// 1 end missing in 1,000 short connections). A full barrier between the reader's last store and one
// more read closes it: either that read sees the record, or the program's commit (a full barrier
// too) sees the new consumer_pos and wakes the reader.
int ConnEvents::consume() {
  int total = 0;
  for (;;) {
    const int n = ring_buffer__consume(ring_);
    if (n < 0) return n;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (n == 0) return total;
    total += n;
  }
}

int ConnEvents::on_record(void* self, void* data, std::size_t size) {
  if (size < sizeof(flowd_conn_event)) return 0;
  flowd_conn_event e;
  std::memcpy(&e, data, sizeof e);
  static_cast<ConnEvents*>(self)->handler_(e);
  return 0;
}

std::uint64_t ConnEvents::lost() const {
  return stat(FLOWD_CONN_STAT_LOST);
}

std::uint64_t ConnEvents::missed() const {
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(skel_->progs.flowd_conn_state), &info, &len) != 0)
    return 0;
  return info.recursion_misses;
}

std::uint64_t ConnEvents::marked() const {
  return stat(FLOWD_CONN_STAT_MARKED);
}

std::uint64_t ConnEvents::owner_unknown() const {
  return stat(FLOWD_CONN_STAT_OWNER_UNKNOWN);
}

bool ConnEvents::add_listener(std::uint32_t netns, std::uint16_t port, std::string_view comm) {
  flowd_conn_listener_key key{};
  key.netns = netns;
  key.port = port;
  flowd_conn_listener value{};
  std::memcpy(value.comm, comm.data(), std::min(comm.size(), sizeof value.comm - 1));
  return bpf_map_update_elem(bpf_map__fd(skel_->maps.flowd_conn_listeners), &key, &value,
                             BPF_NOEXIST) == 0 ||
         errno == EEXIST;
}

namespace {

// Copies the entries of map `from` that `to` lacks (same key and value sizes).
template <typename Key, typename Value>
void copy_missing(int from, int to) {
  Key key{}, next{};
  Value value{};
  const Key* at = nullptr;
  // Bounded by the map's size: a key deleted under the walk restarts it at the first key at most
  // once per entry, and the maps are small.
  for (int n = 0; n < (1 << 17) && bpf_map_get_next_key(from, at, &next) == 0; ++n) {
    key = next;
    at = &key;
    if (bpf_map_lookup_elem(from, &key, &value) == 0)
      bpf_map_update_elem(to, &key, &value, BPF_NOEXIST);
  }
}

}  // namespace

void ConnEvents::copy_owners_from(const ConnEvents& predecessor) {
  copy_missing<__u64, std::array<char, FLOWD_CONN_COMM_LEN>>(
      bpf_map__fd(predecessor.skel_->maps.flowd_conn_connecting),
      bpf_map__fd(skel_->maps.flowd_conn_connecting));
  copy_missing<flowd_conn_listener_key, flowd_conn_listener>(
      bpf_map__fd(predecessor.skel_->maps.flowd_conn_listeners),
      bpf_map__fd(skel_->maps.flowd_conn_listeners));
}

int ConnEvents::own_marks_fd() const {
  return bpf_map__fd(skel_->maps.flowd_own_marks);
}

std::uint64_t ConnEvents::stat(std::uint32_t which) const {
  std::vector<__u64> values(static_cast<std::size_t>(ncpu_));
  __u32 key = which;
  std::uint64_t sum = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.flowd_conn_stats), &key, values.data()) == 0)
    for (auto v : values) sum += v;
  return sum;
}

}  // namespace flowd::kernel
