// SPDX-License-Identifier: Apache-2.0
// The api plugin's listening sockets: a unix socket at a path local users reach, made as safely as
// np_api's pipe (issue 13), and a TCP address.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/net/endpoint.hpp"
#include "common/unique_fd.hpp"

namespace flowd::api {

struct UnixSocketSpec {
  std::string path;
  mode_t mode = 0666;
  std::optional<gid_t> group;
};

// Binds and listens on a unix stream socket at spec.path (non-blocking, close-on-exec), making its
// directory when missing. What it finds at the path:
//   - nothing: the socket is made there;
//   - a socket of flowd's user nobody listens on (a flowd that was killed left it): replaced;
//   - a socket another process listens on: refused (another flowd runs with this path);
//   - anything else (a file, a link, a directory, another user's socket): refused.
// Directories reached through another user's symbolic link are refused (common/local_path.hpp).
// The socket file then gets spec.mode and spec.group, set through a descriptor proven (O_PATH,
// fstat) to be the socket just made, never by a path that could have been swapped for a link.
// Throws std::runtime_error or std::system_error naming the path and what to do.
UniqueFd listen_unix(const UnixSocketSpec& spec);

// Removes the socket at `path` if it is still a socket (at stop).
void remove_unix_socket(const std::string& path);

// Binds and listens on a TCP socket at `ep` (an IP literal), non-blocking, close-on-exec,
// SO_REUSEADDR. Throws std::system_error naming the address.
UniqueFd listen_tcp(const net::Endpoint& ep);

}  // namespace flowd::api
