// SPDX-License-Identifier: Apache-2.0
// The composition root: the one explicit table of plugins and backends (no static
// self-registration), handed to the config loader and the daemon by main.cpp.
#pragma once

#include "core/component_table.hpp"

namespace flowd {

const ComponentTable& component_table();

}  // namespace flowd
