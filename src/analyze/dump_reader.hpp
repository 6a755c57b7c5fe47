// SPDX-License-Identifier: Apache-2.0
// Reads a dump file line by line in bounded memory: plain text or gzip (zlib tells them apart;
// concatenated gzip members are read one after the other). Each line is returned in place, followed
// in memory by simdjson::SIMDJSON_PADDING readable bytes, so DumpLineParser parses it without a
// copy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "analyze/dump_line.hpp"

namespace flowd::analyze {

struct DumpLine {
  std::string_view text;      // without the newline; valid until the next call
  std::uint64_t number = 0;   // 1-based line number
  bool too_long = false;      // longer than the limit: `text` is empty and the line was skipped
  bool unterminated = false;  // the file's last line had no newline (a cut-off file, often)
};

class DumpReader {
 public:
  // Opens `path` ("-": standard input). Throws std::runtime_error when it cannot be opened.
  explicit DumpReader(const std::string& path, std::size_t max_line = kMaxLineBytes);
  ~DumpReader();
  DumpReader(const DumpReader&) = delete;
  DumpReader& operator=(const DumpReader&) = delete;

  // The next line; false at the end of the input or when reading failed (see error()).
  bool next(DumpLine& line);
  // Why reading stopped early ("truncated gzip stream", zlib's message), or empty.
  const std::string& error() const { return error_; }
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool fill();  // reads more after end_; false at EOF or error

  void* file_ = nullptr;  // gzFile
  std::size_t max_line_;
  std::vector<char> buf_;
  std::size_t begin_ = 0, end_ = 0;
  std::uint64_t number_ = 0;
  std::uint64_t bytes_read_ = 0;
  bool eof_ = false;
  std::string error_;
};

}  // namespace flowd::analyze
