// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/record_dump.hpp"

#include <fcntl.h>

#include <stdexcept>

#include "common/owned_file.hpp"
#include "common/unique_fd.hpp"

namespace flowd::netflow {

void RecordDump::open(const std::string& path, const std::string& owner) {
  close();
  UniqueFd fd;
  try {
    fd = open_owned_regular_file(path, O_APPEND, 0640);
  } catch (const std::exception& e) {
    throw std::runtime_error(owner + "dump: " + e.what());
  }
  // gzdopen() owns the descriptor once it succeeds (gzclose closes it).
  gzFile f = gzdopen(fd.get(), path.ends_with(".gz") ? "ab" : "abT");
  if (!f) throw std::runtime_error(owner + "dump: cannot open " + path + " (gzdopen)");
  fd.release();
  std::lock_guard lock(mu_);
  file_ = f;
}

void RecordDump::write(std::string_view lines) {
  std::lock_guard lock(mu_);
  if (file_) gzwrite(file_, lines.data(), static_cast<unsigned>(lines.size()));
}

void RecordDump::flush() {
  std::lock_guard lock(mu_);
  if (file_) gzflush(file_, Z_SYNC_FLUSH);
}

void RecordDump::close() {
  std::lock_guard lock(mu_);
  if (file_) gzclose(file_);
  file_ = nullptr;
}

}  // namespace flowd::netflow
