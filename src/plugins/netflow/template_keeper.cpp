// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/template_keeper.hpp"

#include <algorithm>

#include "plugins/netflow/template_file.hpp"

namespace flowd::netflow {

TemplateKeeper::TemplateKeeper(std::string path, std::chrono::seconds interval, std::size_t workers,
                               std::shared_ptr<spdlog::logger> log, prometheus::Registry* metrics)
    : path_(std::move(path)),
      interval_(interval),
      log_(std::move(log)),
      latest_(workers),
      next_(workers) {
  if (!metrics) return;
  auto& family =
      prometheus::BuildCounter()
          .Name("flowd_netflow_template_file_total")
          .Help(
              "The template file in work_dir: saves (saved, save_failed), a file refused "
              "at start (refused), and its templates and domains taken back (restored), "
              "past template_timeout (expired) or invalid or over the bounds (invalid)")
          .Register(*metrics);
  constexpr std::array<const char*, kEventCount> kNames{"saved",    "save_failed", "refused",
                                                        "restored", "expired",     "invalid"};
  for (std::size_t i = 0; i < kEventCount; ++i) events_[i] = &family.Add({{"event", kNames[i]}});
}

void TemplateKeeper::restore(std::span<collector::Decoder* const> decoders, TimePoint now) {
  if (!enabled()) return;
  std::string error;
  const auto saved = read_template_file(path_, error);
  if (!saved) {
    if (!error.empty()) count(kRefused);
    if (!error.empty())
      log_->warn("{}: {}; starting without saved templates (the file is replaced on the next save)",
                 path_, error);
    return;
  }
  collector::RestoreResult r;
  for (auto* d : decoders) r = d->restore(*saved, now);
  count(kRestored, static_cast<double>(r.templates + r.domains));
  count(kExpired, static_cast<double>(r.expired));
  count(kInvalid, static_cast<double>(r.invalid));
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
  // Every third of the interval: the file then holds what worker 0 had at most a third ago and
  // the other workers at most two thirds plus a tick (a quarter) ago, within the interval.
  const auto period = std::max<TimePoint::duration>(
      std::chrono::duration_cast<TimePoint::duration>(interval_) / 3, std::chrono::seconds(1));
  if (next_[worker] == TimePoint{}) next_[worker] = now + period;
  if (now < next_[worker]) return;
  next_[worker] = now + period;
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
    count(kSaveFailed);
    std::uint64_t held = 0;
    if (limiter_.allow(held))
      log_->warn(
          "saving the templates failed: {}; a restart will wait for the exporters' next "
          "templates{}",
          error, held ? fmt::format(" ({} more not logged)", held) : "");
    return;
  }
  count(kSaved);
  log_->debug("saved {} template(s) and {} domain(s) to {}", merged.templates.size(),
              merged.domains.size(), path_);
}

}  // namespace flowd::netflow
