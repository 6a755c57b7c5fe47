// SPDX-License-Identifier: Apache-2.0
// Writing JSON text by hand where a DOM per message would cost more than the message (fireflies,
// Kafka events): string escaping per RFC 8259 §7.
#pragma once

#include <string>
#include <string_view>

namespace flowd {

// Appends `s` to `out` as a JSON string: quoted, with '"' and '\' escaped and control characters
// (U+0000..U+001F) as \u00XX. Other bytes are copied as they are (the caller passes UTF-8).
void append_json_string(std::string& out, std::string_view s);

}  // namespace flowd
