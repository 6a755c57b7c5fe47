// SPDX-License-Identifier: Apache-2.0
// The BPF side of the kernel plugin (bpf/flowd_conn.bpf.c): loads and attaches the program on the
// sock:inet_sock_set_state tracepoint, reads its ring buffer and its counters. No sockets, no
// tracking: the plugin turns the records into events.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flowd_conn.h"

struct flowd_conn;
struct ring_buffer;

namespace flowd::kernel {

// Why the program could not be loaded, in words for the log ("missing CAP_BPF ...").
class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the program writes into the marker's flow map at a connection's start (marked from the
// first packet): the marker's map, and the labels (semantic bits: make_label with entropy 0) by
// local port and, when set, for every other port.
struct FirstPacketMarks {
  int flow_map_fd = -1;  // the marker's (MarkerProbe::flow_map_fd); borrowed for the load only
  std::optional<std::uint32_t> default_label;
  std::vector<std::pair<std::uint16_t, std::uint32_t>> port_labels;
  // IPv6 networks whose connections are never marked (the plugin does not report them):
  // {address in network order, prefix length in bits}.
  std::vector<std::pair<std::array<std::uint8_t, 16>, std::uint32_t>> unmarked_networks;
  // The program's record of its own entries (flowd_own_marks): a reload's predecessor's, taken
  // over (borrowed for the load only); -1: a new one of `own_marks_size` entries.
  int own_marks_fd = -1;
  std::uint32_t own_marks_size = 1;
};

class ConnEvents {
 public:
  using Handler = std::function<void(const flowd_conn_event&)>;

  // Opens, loads and attaches the program: a ring buffer of `ring_bytes` (a power of two, a whole
  // number of pages), events of the network namespace with inode `netns` only (0: all). Records go
  // to `handler` from consume(). With `marks`, the program also marks from the first packet.
  // With `owners`, a start's record names its owner (flowd_conn_event::comm: the process that
  // called connect(), or listen() on its local port). Throws LoadError saying why (capabilities,
  // BTF, the kernel's errno).
  ConnEvents(std::uint32_t ring_bytes, std::uint32_t netns, Handler handler,
             const std::optional<FirstPacketMarks>& marks = std::nullopt, bool owners = false);
  ~ConnEvents();
  ConnEvents(const ConnEvents&) = delete;
  ConnEvents& operator=(const ConnEvents&) = delete;

  // Where consume() hands the records from now on (a reload's successor takes over the program).
  void set_handler(Handler handler) { handler_ = std::move(handler); }
  // Readable (epoll) when records wait in the ring buffer.
  int fd() const;
  // Hands every waiting record to the handler; the number handed, or -errno. It reads until a read
  // that follows a full memory barrier finds nothing: see conn_events.cpp for the wakeup this
  // closes.
  int consume();
  // Takes the program off the tracepoint: no record is added to the ring from the return on (the
  // ring and the maps stay readable).
  void detach();
  // Records the full ring buffer refused since load (summed over CPUs).
  std::uint64_t lost() const;
  // State changes the kernel did not run the program for since load: one that happened while the
  // program ran on the same CPU (a softirq's, interrupting it), which BPF's recursion guard skips
  // (bpf_prog_info::recursion_misses, Linux 5.12; 0 before).
  std::uint64_t missed() const;
  // Flows the program wrote into the marker's map since load (summed over CPUs).
  std::uint64_t marked() const;
  // Starts (with `owners`) whose opening the program did not see: no owner in the record.
  std::uint64_t owner_unknown() const;

  // Tells the program who listens on `port` of namespace `netns` (a listener older than the
  // program: its listen() came before the program was attached), unless it knows already. `comm`
  // is what the passive connections on the port get (empty: not the configured process). False
  // when the map refused it (full).
  bool add_listener(std::uint32_t netns, std::uint16_t port, std::string_view comm);
  // Copies what `predecessor` (a reload's shelved program) knows of the connect()s in flight and
  // of the listeners, where this program knows nothing yet: what they opened before this program
  // was attached gets its owner all the same.
  void copy_owners_from(const ConnEvents& predecessor);

  // The entries the program wrote into the marker's map, key -> value written (flowd_own_marks).
  int own_marks_fd() const;
  // Whether it was loaded with `marks` (it writes the marker's map).
  bool marking() const { return marking_; }

 private:
  static int on_record(void* self, void* data, std::size_t size);
  // Opens, sets up and loads the program into skel_ (null again on failure); 0 or -errno.
  int load(std::uint32_t ring_bytes, std::uint32_t netns,
           const std::optional<FirstPacketMarks>& marks, bool owners, bool cookie);
  std::uint64_t stat(std::uint32_t which) const;
  flowd_conn* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  Handler handler_;
  int ncpu_ = 1;
  bool marking_ = false;
};

// The inode number of the calling thread's network namespace (/proc/thread-self/ns/net); 0 when
// it cannot be read.
std::uint32_t own_netns_inode();

}  // namespace flowd::kernel
