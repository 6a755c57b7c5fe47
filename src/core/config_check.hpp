// SPDX-License-Identifier: Apache-2.0
// What `flowd --check-config` checks beyond the key tables: every configured component is built
// (its constructor parses and checks its values) and destroyed without being started.
#pragma once

#include <memory>
#include <string>

#include "core/config_loader.hpp"

namespace flowd {

// Builds each plugin and backend of `c` with a scratch context (a metrics registry of its own, the
// registry from a flow_map_api file, else the cached copy in work_dir, else the built-in snapshot:
// never downloaded) and destroys it unstarted. Constructors open no socket, pipe or thread
// (include/flowd/component.hpp: that is start()'s work), so nothing outside the process changes.
// Returns where the registry names were checked against. Throws ConfigError "<c.path>: <the
// component's message (section and key)>" when one refuses its configuration; other exceptions
// become a ConfigError naming the file and the section.
std::string check_components(const Config& c);
// The same with the registry the components are to be built with (a reload's, just fetched).
void check_components(const Config& c, std::shared_ptr<const ScitagsRegistry> registry);

// A component's configuration error as the user reads it: "<path>: <message>", the file named
// exactly once (a message that already starts with "<path>: " is returned as it is; an empty path,
// a Config built in memory, adds nothing). The key table's errors name the file themselves
// (config_loader.cpp); components only know their section.
std::string in_config_file(const std::string& path, const std::string& message);

}  // namespace flowd
