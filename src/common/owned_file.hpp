// SPDX-License-Identifier: Apache-2.0
// Opening a file flowd writes by path (a dump, ...) so that a local user who can write its
// directory cannot turn flowd against another file (issue 13): a symbolic link at the path is never
// followed, and what was opened is proven with fstat() to be a regular file of flowd's own user
// with one link before a byte is written. A FIFO is refused too: a dump into a pipe nobody reads
// would block the writer or lose records without a word.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

#include "common/unique_fd.hpp"

namespace flowd {

// What kind of file mode `m` describes, for messages: "a symbolic link", "a named pipe", ...
std::string describe_file_type(mode_t m);

// Opens `path` write-only with O_CREAT | O_NOFOLLOW | O_CLOEXEC and `extra_flags` (O_APPEND or
// O_TRUNC), creating it with `mode` (less the umask). Refuses, with a std::runtime_error naming the
// path, what is there and what to do about it: a symbolic link, a FIFO (never blocks: opened with
// O_NONBLOCK), a directory, a device or socket, a file owned by another user than flowd's effective
// one, a file with more than one hard link. Other failures of open() or fstat() throw
// std::system_error naming the call and the path. The descriptor returned is blocking.
UniqueFd open_owned_regular_file(const std::string& path, int extra_flags, mode_t mode);

// Replaces the file at `path` with `body`: written to a fresh file of flowd's own beside it
// (mkostemp: O_CREAT | O_EXCL), given `mode`, fsync()ed and renamed over `path`, so a link or
// another user's file at the path (or at a temporary name) is replaced, never written through, and
// a reader sees the old content or the new, never part. Creates the directory if missing. Returns
// "" on success, else "PATH: reason" (the temporary file is removed).
std::string replace_file_atomically(const std::string& path, const std::string& body, mode_t mode);
// The infix of replace_file_atomically()'s temporary files: `path` + kTemporaryInfix + 6 letters or
// digits (mkostemp's). Distinctive, so that removing stale ones never takes an admin's
// `path.backup` (try15h D2).
inline constexpr const char* kTemporaryInfix = ".flowd-tmp-";
// Creates `dir` and its missing parents with `mode` (narrowed by the umask; parts that exist are
// left as they are). Unlike std::filesystem::create_directories (0777 & ~umask), a umask of 000
// never makes them writable by all. Errors are left to the caller's next open.
void create_private_directories(const std::string& dir, mode_t mode = 0755);
// Removes the temporary files replace_file_atomically(`path`) leaves when the process is killed
// between writing and renaming (`path` + kTemporaryInfix + 6 letters or digits, regular files of
// this user). Only for a file whose writer holds a lock (one writer at a time): another writer's
// temporary would go too. Returns how many it removed.
std::size_t remove_stale_temporaries(const std::string& path);

// Reads the whole file at `path` that flowd wrote itself (a cache, a record): nullopt with `error`
// empty when there is none; nullopt with `error` ("not a regular file of this user", "N bytes,
// more than the M read at most", or strerror) when what is there is a link, another user's file,
// not a regular file or larger than `max_bytes` (M). Never follows a link, never blocks on a FIFO.
std::optional<std::string> read_owned_regular_file(const std::string& path, std::size_t max_bytes,
                                                   std::string& error);
// The same checks, for a caller that reads the file itself (in pieces): the descriptor (its reads
// do not block: a regular file) and the file's `size`, or an invalid descriptor with `error` as
// above (empty when there is no file).
UniqueFd open_owned_file_for_reading(const std::string& path, std::size_t max_bytes,
                                     std::size_t& size, std::string& error);

}  // namespace flowd
