// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the netflow plugin's template file (parse_template_file), what Decoder::restore
// makes of it, and a data set decoded with the templates it gave back. A file flowd did not write
// must never crash the collector, give it a template the wire could not define, or grow it past
// its bounds.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "collector/decoder.hpp"
#include "collector/decoder_snapshot.hpp"
#include "plugins/netflow/template_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto now = flowd::TimePoint{std::chrono::seconds(1'800'000'000)};
  const auto file = flowd::netflow::parse_template_file(body, now, error);
  if (!file) {
    if (error.empty()) __builtin_trap();  // a refusal must say why
    return 0;
  }
  const auto* saved = &file->snapshot;
  // A skipped entry is named.
  if ((file->skipped_templates + file->skipped_domains != 0) == file->first_skipped.empty())
    __builtin_trap();
  flowd::collector::DecoderLimits limits;
  limits.max_templates_per_exporter = 64;
  limits.max_template_bytes_per_exporter = 64 << 10;
  limits.max_template_bytes = 256 << 10;
  limits.apply_sampling = true;
  flowd::collector::Decoder decoder(limits);
  const auto r = decoder.restore(*saved, now);
  // Every entry is accounted for at most once (a key given twice is kept once; a template evicted
  // by a later one is neither kept nor refused), and what is said kept is what the decoder holds.
  if (r.templates + r.domains + r.expired + r.invalid + r.refused_max_templates +
          r.refused_too_large >
      saved->templates.size() + saved->domains.size())
    __builtin_trap();
  if (decoder.template_count() != r.templates) __builtin_trap();
  // What was taken back goes out and in again unchanged in number.
  flowd::collector::Decoder again(limits);
  const auto back = decoder.snapshot();
  const auto r2 = again.restore(back, now);
  if (r2.invalid != 0 || r2.expired != 0 || again.template_count() != decoder.template_count())
    __builtin_trap();
  // An IPFIX message from 192.0.2.1:4739, domain 0: a data set for template 256 (8 bytes).
  static const std::uint8_t kData[] = {0, 10, 0, 28, 0x6b, 0x49, 0xd2, 0, 0, 0, 0,   1,  0,   0,
                                       0, 0,  1, 0,  0,    12,   192,  0, 2, 1, 198, 51, 100, 7};
  flowd::collector::RecordBatch out;
  const flowd::collector::Exporter from{*flowd::IpAddress::parse("192.0.2.1"), 4739};
  decoder.decode(kData, from, now, out);
  return 0;
}
