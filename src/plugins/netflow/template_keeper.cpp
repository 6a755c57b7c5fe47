// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/template_keeper.hpp"

#include "plugins/netflow/template_file.hpp"

namespace flowd::netflow {

TemplateKeeper::TemplateKeeper(std::string path, std::chrono::seconds interval,
                               std::size_t workers, std::shared_ptr<spdlog::logger> log)
    : path_(std::move(path)),
      interval_(interval),
      log_(std::move(log)),
      latest_(workers),
      next_(workers) {}

void TemplateKeeper::restore(std::span<collector::Decoder* const> decoders, TimePoint now) {
  if (!enabled()) return;
  std::string error;
  const auto saved = read_template_file(path_, error);
  if (!saved) {
    if (!error.empty())
      log_->warn("{}: {}; starting without saved templates (the file is replaced on the next save)",
                 path_, error);
    return;
  }
  collector::RestoreResult r;
  for (auto* d : decoders) r = d->restore(*saved, now);
  log_->info(
      "took back {} template(s) and the sampling state of {} domain(s) from {}{}{}", r.templates,
      r.domains, path_, r.expired ? fmt::format("; {} older than template_timeout", r.expired) : "",
      r.invalid ? fmt::format("; {} invalid or over the template bounds, left out", r.invalid)
                : "");
  for (std::size_t i = 0; i < latest_.size() && i < decoders.size(); ++i)
    latest_[i] = decoders[i]->snapshot();
  for (auto& t : next_) t = now + interval_;
}

void TemplateKeeper::tick(std::size_t worker, const collector::Decoder& decoder, TimePoint now) {
  if (!enabled() || interval_.count() == 0 || worker >= next_.size()) return;
  if (next_[worker] == TimePoint{}) next_[worker] = now + interval_;
  if (now < next_[worker]) return;
  next_[worker] = now + interval_;
  last_snapshot(worker, decoder);
  if (worker == 0) write();
}

void TemplateKeeper::last_snapshot(std::size_t worker, const collector::Decoder& decoder) {
  if (!enabled() || worker >= latest_.size()) return;
  auto s = decoder.snapshot();
  std::lock_guard lock(mu_);
  latest_[worker] = std::move(s);
}

void TemplateKeeper::write() {
  if (!enabled()) return;
  collector::DecoderSnapshot merged;
  {
    std::lock_guard lock(mu_);
    merged = collector::merge_snapshots(latest_);
  }
  if (const auto error = write_template_file(path_, merged); !error.empty()) {
    std::uint64_t held = 0;
    if (limiter_.allow(held))
      log_->warn("saving the templates failed: {}; a restart will wait for the exporters' next "
                 "templates{}",
                 error, held ? fmt::format(" ({} more not logged)", held) : "");
    return;
  }
  log_->debug("saved {} template(s) and {} domain(s) to {}", merged.templates.size(),
              merged.domains.size(), path_);
}

}  // namespace flowd::netflow
