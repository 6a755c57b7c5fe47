// SPDX-License-Identifier: Apache-2.0
// The netflow plugin's template file: what its UDP decoders learnt (templates, sampling options,
// init times: collector/decoder_snapshot.hpp) kept in work_dir, so that a restart does not drop
// every exporter's data until its next template (issue 16 §3).
//
// File: <work_dir>/templates.<plugin section>.json, mode 0600, replaced atomically (a fresh file
// fsync()ed and renamed over it), written on stop and every template_save_interval. JSON:
//   {"format": "flowd-templates", "version": 1, "written_ms": <ms since the epoch>,
//    "templates": [{"exporter": "192.0.2.1", "port": 4739, "ipfix_version": 10, "domain": 0,
//                   "id": 256, "options": false, "scope_count": 0, "seen_ms": <ms>,
//                   "fields": [[pen, id, length], ...]}, ...],
//    "domains": [{"exporter": ..., "port": ..., "ipfix_version": ..., "domain": ..., "seen_ms":
//    ...,
//                 "system_init_ms": <ms>, "default_rate": N, "rates": [[sampler id, N], ...]}]}
// ("ipfix_version" is the export's version number, 9 or 10; "port" is 0 for v9, keyed by address).
// Read only when it is a regular file of flowd's own user (never through a link) of at most
// max_template_file_bytes(); anything else, or JSON not of this shape, is an error the caller logs
// and ignores. An entry that is malformed, or "seen_ms" more than kFutureSlackMs ahead of now, is
// skipped and counted; the others are kept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>

#include "collector/decoder.hpp"
#include "collector/decoder_snapshot.hpp"

namespace flowd::netflow {

// How far ahead of the clock an entry's "seen_ms" may be (the clock set back a little since the
// save); beyond, the entry is skipped (a year-2100 time would otherwise count as now).
inline constexpr std::int64_t kFutureSlackMs = 3'600'000;

// The longest a template (without its fields), a field, a domain (without its rates), a sampler
// rate and the rest of the file can be as write_template_file() writes them (nlohmann's compact
// dump: members in key order, no spaces), each with the comma after it: the longest address
// inet_ntop() writes, every number at its widest (times: any int64; v9 has no enterprise numbers,
// and IPFIX's enterprise bit is not part of the id).
inline constexpr std::string_view kLongestTemplate =
    R"({"domain":4294967295,"exporter":"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",)"
    R"("fields":[],"id":65535,"ipfix_version":10,"options":false,"port":65535,)"
    R"("scope_count":65535,"seen_ms":-9223372036854775808},)";
inline constexpr std::string_view kLongestV9Field = "[0,65535,65535],";
inline constexpr std::string_view kLongestIpfixField = "[0,32767,65535],";
inline constexpr std::string_view kLongestEnterpriseField = "[4294967295,32767,65535],";
inline constexpr std::string_view kLongestDomain =
    R"({"default_rate":18446744073709551615,"domain":4294967295,)"
    R"("exporter":"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255","ipfix_version":10,)"
    R"("port":65535,"rates":[],"seen_ms":-9223372036854775808,)"
    R"("system_init_ms":18446744073709551615},)";
inline constexpr std::string_view kLongestRate = "[18446744073709551615,18446744073709551615],";
inline constexpr std::string_view kLongestFrame =
    R"({"domains":[],"format":"flowd-templates","templates":[],"version":1,)"
    R"("written_ms":-9223372036854775808})"
    "\n";

// The largest template file flowd's own writer can make within the bounds (max_template_bytes,
// and `workers` receive workers' domains), plus a small margin; a larger file is refused unread.
// About 103 MB with the defaults (one worker). Bytes.
std::size_t max_template_file_bytes(const collector::DecoderLimits& limits, std::size_t workers);

// "<work_dir>/templates.<section>.json"; empty when work_dir is empty (nothing is kept).
std::string template_file_path(const std::string& work_dir, const std::string& section);

// A template file's entries, and those skipped: malformed, or seen too far in the future.
struct TemplateFile {
  collector::DecoderSnapshot snapshot;
  std::size_t skipped_templates = 0, skipped_domains = 0;
  std::string first_skipped;  // "template 3", "domain 1": the first one skipped, for the log
};

// The file at `path`: nullopt with `error` empty when there is none, nullopt with `error` saying
// what is wrong when it is larger than `max_bytes` or not a template file flowd wrote.
std::optional<TemplateFile> read_template_file(const std::string& path, std::size_t max_bytes,
                                               TimePoint now, std::string& error);

// What a template file's text holds; nullopt with `error` ("not a flowd template file (...)")
// when it is not one. Each entry is only checked for its JSON shape here: Decoder::restore checks
// that the wire could have carried it.
std::optional<TemplateFile> parse_template_file(std::string_view body, TimePoint now,
                                                std::string& error);
// The same, the text (`size` characters) read from `in` as the parser goes.
std::optional<TemplateFile> parse_template_file(std::istream& in, std::size_t size, TimePoint now,
                                                std::string& error);

// Replaces the file at `path` with `snapshot`; "" on success, else "PATH: reason".
std::string write_template_file(const std::string& path,
                                const collector::DecoderSnapshot& snapshot);

}  // namespace flowd::netflow
