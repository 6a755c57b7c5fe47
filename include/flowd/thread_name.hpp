// SPDX-License-Identifier: Apache-2.0
// Names the calling thread after the component it runs, as `top -H`, `ps -L`, gdb and
// /proc/PID/task/TID/comm show it: "plugin.netflow" becomes "netflow", "plugin.netflow worker 2"
// "netflow#2", "backend.udp_firefly" "udp_firefly" (the process is flowd; the main thread keeps
// that name). Linux keeps 15 bytes; longer names are cut there.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace flowd {

// `who` as the supervisor names it: "plugin.NAME", "backend.NAME", optionally " worker N".
inline std::string thread_name_for(std::string_view who) {
  if (auto dot = who.find('.'); dot != std::string_view::npos) who.remove_prefix(dot + 1);
  std::string name;
  if (auto sp = who.find(" worker "); sp != std::string_view::npos) {
    name += who.substr(0, sp);
    name += '#';
    name += who.substr(sp + 8);
  } else {
    name += who;
  }
  if (name.size() > 15) name.resize(15);
  return name;
}

inline void set_thread_name(std::string_view who) {
  ::pthread_setname_np(::pthread_self(), thread_name_for(who).c_str());
}

}  // namespace flowd
