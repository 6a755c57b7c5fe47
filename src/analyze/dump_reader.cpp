// SPDX-License-Identifier: Apache-2.0
#include "analyze/dump_reader.hpp"

#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace flowd::analyze {
namespace {

constexpr std::size_t kChunk = 256 * 1024;

gzFile gz(void* f) {
  return static_cast<gzFile>(f);
}

}  // namespace

DumpReader::DumpReader(const std::string& path, std::size_t max_line) : max_line_(max_line) {
  if (path == "-") {
    int fd = dup(STDIN_FILENO);
    file_ = fd < 0 ? nullptr : gzdopen(fd, "rb");
    if (!file_ && fd >= 0) close(fd);
  } else {
    file_ = gzopen(path.c_str(), "rb");
  }
  if (!file_)
    throw std::runtime_error(path + ": cannot open: " + std::strerror(errno ? errno : ENOMEM));
  gzbuffer(gz(file_), kChunk);
  buf_.resize(max_line_ + kChunk + simdjson::SIMDJSON_PADDING);
}

DumpReader::~DumpReader() {
  if (file_) gzclose(gz(file_));
}

bool DumpReader::fill() {
  const std::size_t cap = buf_.size() - simdjson::SIMDJSON_PADDING;
  const std::size_t room = std::min<std::size_t>(cap - end_, INT_MAX);
  if (eof_ || room == 0) return false;
  const int n = gzread(gz(file_), buf_.data() + end_, static_cast<unsigned>(room));
  if (n > 0) {
    end_ += static_cast<std::size_t>(n);
    bytes_read_ += static_cast<std::uint64_t>(n);
    return true;
  }
  eof_ = true;
  int code = Z_OK;
  const char* msg = gzerror(gz(file_), &code);
  if (n < 0 || (code != Z_OK && code != Z_BUF_ERROR))
    error_ = std::string("read error: ") + (msg && *msg ? msg : std::strerror(errno));
  else if (code == Z_BUF_ERROR)
    error_ = "truncated gzip stream: the file ends inside compressed data";
  return false;
}

bool DumpReader::next(DumpLine& line) {
  line = DumpLine{};
  for (;;) {
    const char* base = buf_.data();
    if (const void* nl = std::memchr(base + begin_, '\n', end_ - begin_)) {
      const auto at = static_cast<std::size_t>(static_cast<const char*>(nl) - base);
      line.text = std::string_view(base + begin_, at - begin_);
      line.number = ++number_;
      begin_ = at + 1;
      if (line.text.size() > max_line_) {
        line.text = {};
        line.too_long = true;
      }
      return true;
    }
    if (end_ - begin_ > max_line_) {
      // No newline within the limit: skip to the next one without keeping the line.
      line.number = ++number_;
      line.too_long = true;
      for (;;) {
        begin_ = end_ = 0;
        if (!fill()) break;
        if (const void* nl = std::memchr(buf_.data(), '\n', end_)) {
          begin_ = static_cast<std::size_t>(static_cast<const char*>(nl) - buf_.data()) + 1;
          break;
        }
      }
      return true;
    }
    if (eof_) {
      if (begin_ == end_) return false;
      line.text = std::string_view(base + begin_, end_ - begin_);
      line.number = ++number_;
      line.unterminated = true;
      begin_ = end_;
      return true;
    }
    if (begin_ > 0) {
      std::memmove(buf_.data(), base + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    fill();
  }
}

}  // namespace flowd::analyze
