// SPDX-License-Identifier: Apache-2.0
#include "common/local_path.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace flowd {

gid_t resolve_group(const std::string& text) {
  if (struct group* g = ::getgrnam(text.c_str())) return g->gr_gid;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
      text.size() < 10)
    return static_cast<gid_t>(std::stoul(text));
  throw std::runtime_error("no group named '" + text + "'");
}

void refuse_foreign_links(const std::string& path, const std::string& setting) {
  namespace fs = std::filesystem;
  fs::path so_far;
  for (const auto& part : fs::path(path).parent_path()) {
    so_far /= part;
    struct stat st {};
    if (::lstat(so_far.c_str(), &st) != 0) return;  // the rest does not exist yet: flowd makes it
    if (S_ISLNK(st.st_mode) && st.st_uid != 0 && st.st_uid != ::geteuid())
      throw std::runtime_error("the directory " + so_far.string() + " of " + path +
                               " is a symbolic link owned by uid " + std::to_string(st.st_uid) +
                               ", not by root or flowd's user: flowd does not follow it; remove it "
                               "(rm " +
                               so_far.string() + ") or set " + setting);
  }
}

}  // namespace flowd
