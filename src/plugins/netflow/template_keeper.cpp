// SPDX-License-Identifier: Apache-2.0
#include "plugins/netflow/template_keeper.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <tuple>

#include "plugins/netflow/template_file.hpp"

namespace flowd::netflow {

TemplateKeeper::TemplateKeeper(std::string path, std::chrono::seconds interval, std::size_t workers,
                               const collector::DecoderLimits& limits,
                               std::shared_ptr<spdlog::logger> log, prometheus::Registry* metrics)
    : path_(std::move(path)),
      interval_(interval),
      max_template_bytes_(limits.max_template_bytes),
      max_file_bytes_(max_template_file_bytes(limits, workers)),
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
  const auto t0 = std::chrono::steady_clock::now();
  auto file = read_template_file(path_, max_file_bytes_, now, error);
  const auto t1 = std::chrono::steady_clock::now();
  if (!file) {
    if (!error.empty()) count(kRefused);
    if (!error.empty())
      log_->warn("{}: {}; starting without saved templates (the file is replaced on the next save)",
                 path_, error);
    return;
  }
  const collector::DecoderSnapshot* saved = &file->snapshot;
  const std::size_t skipped_templates = file->skipped_templates;
  const std::size_t skipped = skipped_templates + file->skipped_domains;
  if (skipped)
    log_->warn(
        "{}: {} malformed template(s) and {} domain(s) skipped (the first: {}; a field missing or "
        "of another type, a value out of range, or seen_ms ahead of the clock)",
        path_, skipped_templates, file->skipped_domains, file->first_skipped);
  // Every decoder gets every entry, and what they keep is charged to the one budget they share:
  // with several workers the byte bounds hold several copies, and a later decoder's charges may
  // evict an earlier one's (erased by its expire()).
  std::vector<collector::RestoreResult> results;
  for (auto* d : decoders) results.push_back(d->restore(*saved, now));
  for (auto* d : decoders) d->expire(now);
  const std::size_t file_templates = saved->templates.size(), file_domains = saved->domains.size();
  // Freed before the decoders' snapshots are taken: the file's entries and the snapshots together
  // would be twice what the bounds hold.
  file->snapshot = {};
  saved = nullptr;
  const auto t2 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < latest_.size() && i < decoders.size(); ++i)
    latest_[i] = decoders[i]->snapshot();
  log_->debug("{}: read in {} ms, taken back in {} ms", path_,
              std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0).count(),
              std::chrono::duration_cast<std::chrono::milliseconds>(t2 - t1).count());
  if (results.empty()) return;
  // Templates kept by at least one decoder.
  std::set<std::tuple<int, std::array<std::uint8_t, 16>, std::uint16_t, std::uint8_t, std::uint32_t,
                      std::uint16_t>>
      kept;
  for (const auto& part : latest_)
    for (const auto& t : part.templates)
      kept.emplace(t.owner.exporter.family, t.owner.exporter.bytes, t.owner.port, t.owner.version,
                   t.owner.domain, t.id);
  // Entry by entry, each decoder judged alike (expired, invalid, refused by a count or size bound);
  // the rest of what is not kept was evicted by the byte bounds.
  const auto& first = results.front();
  std::size_t evicted_exporter = 0, evicted_total = 0;
  for (const auto& r : results) {
    evicted_exporter += r.evicted_exporter_bytes;
    evicted_total += r.evicted_total_bytes;
  }
  const std::size_t refused = first.refused_max_templates + first.refused_too_large;
  const std::size_t judged = first.expired + first.invalid + refused + kept.size();
  const std::size_t in_file = file_templates + file_domains;
  const std::size_t evicted =
      in_file > judged + first.domains ? in_file - judged - first.domains : 0;
  count(kRestored, static_cast<double>(kept.size() + first.domains));
  count(kExpired, static_cast<double>(first.expired));
  count(kInvalid, static_cast<double>(first.invalid + refused + evicted + skipped));
  std::string left_out;
  auto add = [&](std::size_t n, std::string_view why) {
    if (n) left_out += fmt::format("{}{} {}", left_out.empty() ? "; left out: " : ", ", n, why);
  };
  add(skipped_templates, "malformed");  // skipped domains: in the line above, not templates
  add(first.expired, "older than template_timeout");
  add(first.invalid, "that no export could define");
  add(first.refused_max_templates, "beyond max_templates of their exporter");
  add(first.refused_too_large, "larger alone than max_template_bytes_per_exporter");
  const char* bound = evicted_exporter && evicted_total ? "max_template_bytes_per_exporter and "
                                                          "max_template_bytes"
                      : evicted_total                   ? "max_template_bytes"
                                                        : "max_template_bytes_per_exporter";
  add(evicted,
      fmt::format("evicted to stay within {}{}", bound,
                  decoders.size() > 1
                      ? fmt::format(" (each of the {} workers holds its own copy)", decoders.size())
                      : std::string()));
  log_->info(
      "took back {} of {} template(s) and the sampling state of {} of {} domain(s) from {}{}",
      kept.size(), file_templates + skipped_templates, first.domains,
      file_domains + file->skipped_domains, path_, left_out);
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
  // The workers' snapshots were taken at different times: together they may hold more than the
  // bounds ever did at once, and a file beyond max_template_file_bytes() would be refused.
  if (const std::size_t cut = collector::fit_templates(merged, max_template_bytes_))
    log_->debug("{} older template(s) left out of the file to stay within max_template_bytes", cut);
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
