// SPDX-License-Identifier: Apache-2.0
// The `dump` key: every decoded record as a JSON line (collector/record_json.hpp), appended to a
// file, gzip-compressed when its name ends in .gz. Thread-safe: the receive workers share one.
#pragma once

#include <zlib.h>

#include <mutex>
#include <string>
#include <string_view>

namespace flowd::netflow {

class RecordDump {
 public:
  RecordDump() = default;
  ~RecordDump() { close(); }
  RecordDump(const RecordDump&) = delete;
  RecordDump& operator=(const RecordDump&) = delete;

  // Opens `path` for appending: a reload, a restart or a crash must not wipe what earlier runs
  // wrote (a gzip file then holds several members, which gzip, zcat and `flowd analyze` read as one
  // stream). Created 0640; never through a symbolic link, and only a regular file of flowd's own
  // user with one link (common/owned_file.hpp: a FIFO, a link or another user's file is refused).
  // Throws std::runtime_error("<owner>dump: <path> ...: what to do").
  void open(const std::string& path, const std::string& owner);
  bool is_open() const { return file_ != nullptr; }
  // Appends JSON lines (collector/record_json_writer.hpp, each ending in '\n') as they are.
  void write(std::string_view lines);
  // Pushes what is buffered to the file, so that `tail -f` sees it and a crash loses little.
  void flush();
  void close();

 private:
  std::mutex mu_;
  gzFile file_ = nullptr;
};

}  // namespace flowd::netflow
