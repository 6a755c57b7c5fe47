// SPDX-License-Identifier: Apache-2.0
// seccomp_exec --unit FILE -- COMMAND [ARGS...]
// Runs COMMAND under the system-call filter and the capability bounding set a systemd unit file
// asks for (SystemCallFilter=, CapabilityBoundingSet=), as systemd would apply them, so that a test
// can check flowd starts and works under its units' restrictions on a machine where systemd is not
// PID 1 and systemd-run is unavailable. Groups (@system-service ...) are expanded by
// `systemd-analyze syscall-filter`, i.e. by the systemd installed here. A call outside the filter
// kills the process with SIGSYS, systemd's default when SystemCallErrorNumber= is not set.
#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& why) {
  std::cerr << "seccomp_exec: " << why << "\n";
  std::exit(127);
}

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Every group systemd knows, as listed by one `systemd-analyze syscall-filter` (entries are system
// calls or nested groups).
std::map<std::string, std::vector<std::string>> load_groups() {
  FILE* p = ::popen("systemd-analyze syscall-filter --no-pager 2>/dev/null", "r");
  if (!p) die("cannot run systemd-analyze");
  std::map<std::string, std::vector<std::string>> groups;
  std::string current;
  char line[512];
  while (std::fgets(line, sizeof line, p)) {
    auto w = words(line);
    if (w.empty() || w[0][0] == '#') continue;
    if (line[0] == '@') {
      current = w[0];
    } else if ((line[0] == ' ' || line[0] == '\t') && !current.empty()) {
      groups[current].push_back(w[0]);
    }
  }
  ::pclose(p);
  if (groups.empty()) die("systemd-analyze syscall-filter listed no group");
  return groups;
}

// The system calls of a name (a call, or a group followed through nested groups).
void expand(const std::map<std::string, std::vector<std::string>>& groups, const std::string& name,
            std::set<std::string>& out, std::set<std::string>& seen) {
  if (name[0] != '@') {
    out.insert(name);
    return;
  }
  if (!seen.insert(name).second) return;
  auto it = groups.find(name);
  if (it == groups.end()) die("systemd-analyze knows no group " + name);
  for (const auto& e : it->second) expand(groups, e, out, seen);
}

int cap_number(const std::string& name) {
  static const std::map<std::string, int> kCaps = {
      {"CAP_CHOWN", CAP_CHOWN},
      {"CAP_FOWNER", CAP_FOWNER},
      {"CAP_NET_ADMIN", CAP_NET_ADMIN},
      {"CAP_BPF", CAP_BPF},
      {"CAP_PERFMON", CAP_PERFMON},
      {"CAP_SYS_RESOURCE", CAP_SYS_RESOURCE},
      {"CAP_SYS_ADMIN", CAP_SYS_ADMIN},
      {"CAP_NET_RAW", CAP_NET_RAW},
      {"CAP_DAC_OVERRIDE", CAP_DAC_OVERRIDE},
      {"CAP_SETUID", CAP_SETUID},
      {"CAP_SETGID", CAP_SETGID},
      {"CAP_NET_BIND_SERVICE", CAP_NET_BIND_SERVICE},
  };
  auto it = kCaps.find(name);
  if (it == kCaps.end()) die("unknown capability " + name);
  return it->second;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || std::string(argv[1]) != "--unit" || std::string(argv[3]) != "--")
    die("usage: seccomp_exec --unit FILE -- COMMAND [ARGS...]");
  std::ifstream unit(argv[2]);
  if (!unit) die(std::string("cannot read ") + argv[2]);
  const auto groups = load_groups();
  // In the unit's order, as systemd applies them: the first allow list starts from nothing, a later
  // allow line adds to it, a `~` line takes away from it.
  std::set<std::string> allow, seen;
  bool have_allow = false, have_caps = false;
  std::set<int> keep_caps;
  for (std::string line; std::getline(unit, line);) {
    if (line.rfind("SystemCallFilter=", 0) == 0) {
      std::string v = line.substr(17);
      bool negated = !v.empty() && v[0] == '~';
      std::set<std::string> s;
      for (const auto& w : words(negated ? v.substr(1) : v)) expand(groups, w, s, seen);
      seen.clear();
      if (negated) {
        for (const auto& c : s) allow.erase(c);
      } else {
        allow.insert(s.begin(), s.end());
        have_allow = true;
      }
    } else if (line.rfind("CapabilityBoundingSet=", 0) == 0) {
      have_caps = true;
      for (const auto& w : words(line.substr(22))) keep_caps.insert(cap_number(w));
    }
  }
  if (!have_allow) die("the unit has no SystemCallFilter= allow list");
  // systemd always permits @default with an allow list (systemd.exec(5), SystemCallFilter=).
  expand(groups, "@default", allow, seen);

  if (have_caps) {
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
      if (!keep_caps.count(cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
        die("PR_CAPBSET_DROP failed");
  }
  // SECCOMP_EXEC_TRAP=1: SIGSYS instead of a kill, so that strace names the refused call
  // (debugging).
  scmp_filter_ctx ctx =
      seccomp_init(std::getenv("SECCOMP_EXEC_TRAP") ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS);
  if (!ctx) die("seccomp_init failed");
  int added = 0;
  for (const auto& name : allow) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not a call of this architecture
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0) == 0) ++added;
  }
  // NoNewPrivileges=yes is in every flowd unit, and seccomp without CAP_SYS_ADMIN requires it.
  if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1) != 0 || seccomp_load(ctx) != 0)
    die("seccomp_load failed");
  seccomp_release(ctx);
  ::execv(argv[4], argv + 4);
  die(std::string("execv ") + argv[4] + ": " + std::strerror(errno));
}
