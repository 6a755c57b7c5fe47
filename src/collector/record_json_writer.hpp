// SPDX-License-Identifier: Apache-2.0
// The JSON of a decoded record written straight into a caller's buffer: byte for byte what
// `to_json(record).dump()` (record_json.hpp) writes, without the nlohmann DOM (a map node and a
// string per field, ~10 µs a record). The collector writes every record for the `dump` file and
// the kafka backend's `records = yes` (up to a million a second); `flowd decode` keeps the DOM.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "collector/flow_record.hpp"

namespace flowd::collector {

// Appends the JSON of one record: the form record_json.hpp documents, keys in nlohmann's order
// (sorted by name: the DOM's objects are std::maps), strings escaped as nlohmann's dump() escapes
// them (\b \f \n \r \t, other control characters \u00xx, invalid UTF-8 replaced by U+FFFD),
// floats formatted by nlohmann. No allocation once the writer has seen a record's layout and
// `out` has room: the sorted field order and the quoted names of the last few layouts (the
// (enterprise, id) sequences of a template) are kept. Not thread-safe: one per worker.
class RecordJsonWriter {
 public:
  void append(std::string& out, const FlowRecord& record);

 private:
  // One layout: the (enterprise, id) of each field in record order, and the output plan: the
  // fields grouped by name (a repeated element is one key with an array of its values, in
  // record order), groups sorted by name.
  struct Group {
    std::string key;                     // "\"name\":"
    std::uint16_t first = 0, count = 0;  // into Layout::order
  };
  struct Layout {
    std::vector<std::uint64_t> ids;    // pen << 16 | id, per field
    std::vector<std::uint16_t> order;  // field indices, grouped and sorted
    std::vector<Group> groups;
  };
  const Layout& layout_of(const FlowRecord& record);
  static void build(Layout& l, const FlowRecord& record);

  static constexpr std::size_t kLayouts = 8;
  std::array<Layout, kLayouts> layouts_;
  std::size_t used_ = 0, last_ = 0, next_ = 0;
  // The exporter's text, for the batch of records from one exporter.
  Exporter exporter_;
  std::string exporter_text_;
  bool exporter_known_ = false;
};

}  // namespace flowd::collector
