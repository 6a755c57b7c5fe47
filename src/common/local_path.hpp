// SPDX-License-Identifier: Apache-2.0
// What flowd makes at a path local users reach (np_api's named pipe, the api plugin's unix socket):
// the group it is given, and the directories it may be reached through (issue 13).
#pragma once

#include <sys/types.h>

#include <string>

namespace flowd {

// The group named by `text` (a name or a number). Throws std::runtime_error when no such group
// exists.
gid_t resolve_group(const std::string& text);

// The directories of `path` may be reached through symbolic links (/var/run -> /run), but only
// through links root or flowd's user made: a link another user put in a directory they can write
// (/tmp/pub/sub -> /root/dir) would have flowd make its pipe or socket, world-writable and in the
// configured group, where that user chose. The kernel's fs.protected_symlinks covers sticky
// directories only. Throws std::runtime_error naming the link and `setting` (the key to change,
// "[plugin.np_api] path").
void refuse_foreign_links(const std::string& path, const std::string& setting);

}  // namespace flowd
