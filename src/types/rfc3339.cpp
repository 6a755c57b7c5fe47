// SPDX-License-Identifier: Apache-2.0
#include "flowd/rfc3339.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <ctime>

namespace flowd {
namespace {

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

std::string format_time(TimePoint t, TimePrecision precision) {
  char out[kFormattedTimeMax];
  return std::string(out, format_time_to(out, t, precision));
}

std::size_t format_time_to(char* out, TimePoint t, TimePrecision precision) {
  using namespace std::chrono;
  // Years 0000..9999 only: RFC 3339 has four year digits.
  constexpr std::int64_t kMinSecs = -62167219200, kMaxSecs = 253402300799;
  const auto ns_total = duration_cast<nanoseconds>(t.time_since_epoch()).count();
  std::int64_t secs = ns_total / 1'000'000'000;
  std::int64_t frac = ns_total % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  if (secs < kMinSecs) secs = kMinSecs, frac = 0;
  if (secs > kMaxSecs) secs = kMaxSecs, frac = 999'999'999;
  // The civil date by arithmetic (std::chrono's days → year_month_day), not gmtime_r + fmt: the
  // collector formats several times of every record it writes out, most in different seconds.
  const std::chrono::sys_days day{
      std::chrono::days{secs >= 0 ? secs / 86400 : (secs - 86399) / 86400}};
  const std::chrono::year_month_day ymd{day};
  const std::int64_t tod = secs - day.time_since_epoch().count() * 86400;
  auto two = [&](std::size_t at, unsigned v) {
    out[at] = static_cast<char>('0' + v / 10);
    out[at + 1] = static_cast<char>('0' + v % 10);
  };
  const auto year = static_cast<unsigned>(static_cast<int>(ymd.year()));
  two(0, year / 100);
  two(2, year % 100);
  out[4] = '-';
  two(5, static_cast<unsigned>(ymd.month()));
  out[7] = '-';
  two(8, static_cast<unsigned>(ymd.day()));
  out[10] = 'T';
  two(11, static_cast<unsigned>(tod / 3600));
  out[13] = ':';
  two(14, static_cast<unsigned>(tod / 60 % 60));
  out[16] = ':';
  two(17, static_cast<unsigned>(tod % 60));
  const int digits = static_cast<int>(precision);
  std::size_t n = 19;
  if (digits > 0) {
    out[n++] = '.';
    for (int i = digits; i < 9; ++i) frac /= 10;  // truncate to `digits`
    for (int i = digits - 1; i >= 0; --i) {
      out[n + static_cast<std::size_t>(i)] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    n += static_cast<std::size_t>(digits);
  }
  std::memcpy(out + n, "+00:00", 6);
  return n + 6;
}

std::string format_time_iso(TimePoint t) {
  return format_time(t, TimePrecision::kMicroseconds);
}

std::optional<TimePoint> parse_rfc3339(std::string_view s, bool* out_of_range) {
  if (out_of_range) *out_of_range = false;
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)
  if (s.size() < 20) return std::nullopt;
  auto num = [&](std::size_t at, std::size_t len, int& out) {
    if (at + len > s.size() || !all_digits(s.substr(at, len))) return false;
    out = 0;
    for (std::size_t i = 0; i < len; ++i) out = out * 10 + (s[at + i] - '0');
    return true;
  };
  int y, mo, d, h, mi, sec;
  if (!num(0, 4, y) || s[4] != '-' || !num(5, 2, mo) || s[7] != '-' || !num(8, 2, d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !num(11, 2, h) || s[13] != ':' ||
      !num(14, 2, mi) || s[16] != ':' || !num(17, 2, sec))
    return std::nullopt;
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || (mo == 2 && d == 29 && !leap) || h > 23 ||
      mi > 59 || sec > 60)
    return std::nullopt;
  std::size_t i = 19;
  std::int64_t nanos = 0;
  if (s[i] == '.') {
    std::size_t b = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    std::size_t n = i - b;
    if (n == 0 || n > 9) return std::nullopt;
    for (std::size_t k = 0; k < 9; ++k) nanos = nanos * 10 + (k < n ? s[b + k] - '0' : 0);
  }
  int offset_min = 0;
  auto zone = s.substr(i);
  if (zone == "Z" || zone == "z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!num(i + 1, 2, oh) || !num(i + 4, 2, om) || oh > 23 || om > 59) return std::nullopt;
    offset_min = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (y < 1970 || y > 2200) {
    if (out_of_range) *out_of_range = true;
    return std::nullopt;
  }
  // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
  int yy = mo <= 2 ? y - 1 : y;
  int era = yy / 400;
  int yoe = yy - era * 400;
  int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  std::int64_t days = static_cast<std::int64_t>(era) * 146097 + doe - 719468;
  std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  using namespace std::chrono;
  return TimePoint(duration_cast<Clock::duration>(seconds(secs) + nanoseconds(nanos)));
}

}  // namespace flowd
