// SPDX-License-Identifier: Apache-2.0
#include "collector/flow_record.hpp"

#include "collector/decoder.hpp"
#include "collector/record_json.hpp"
#include "collector/utf8.hpp"

namespace flowd::collector {

std::string Exporter::to_string() const {
  std::string a = address.to_string();
  if (address.is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(port);
}

const Field* FlowRecord::find(std::uint16_t id, std::uint32_t pen) const {
  for (const Field& f : fields)
    if (f.id == id && f.pen == pen) return &f;
  return nullptr;
}

namespace {

std::string hex(const std::string& bytes, char sep = 0) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 3);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (sep && i > 0) s += sep;
    const auto b = static_cast<unsigned char>(bytes[i]);
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

// nlohmann::json::dump() throws on invalid UTF-8: replace each bad byte with U+FFFD.
std::string valid_utf8(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    if (const std::size_t n = utf8_sequence_length(in, i)) {
      out.append(in, i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const FieldValue& v) {
  switch (v.kind) {
    case ValueKind::kUnsigned:
      return v.u;
    case ValueKind::kSigned:
      return v.i;
    case ValueKind::kFloat:
      return v.f;
    case ValueKind::kBool:
      return v.u != 0;
    case ValueKind::kIpv4:
    case ValueKind::kIpv6:
      return v.ip.to_string();
    case ValueKind::kMac:
      return hex(v.bytes, ':');
    case ValueKind::kString:
      return valid_utf8(v.bytes);
    case ValueKind::kDateTime:
      return format_time(v.time, v.precision);
    case ValueKind::kOctets:
      return hex(v.bytes);
  }
  return nullptr;
}

nlohmann::json to_json(const FlowRecord& r) {
  nlohmann::json fields = nlohmann::json::object();
  for (const Field& f : r.fields) {
    const std::string name = ie_name(f.pen, f.id);
    nlohmann::json value = to_json(f.value);
    auto it = fields.find(name);
    if (it == fields.end()) {
      fields[name] = std::move(value);
    } else {
      // A repeated element: values are never arrays themselves, so an array here means "repeated".
      if (!it->is_array()) *it = nlohmann::json::array({std::move(*it)});
      it->push_back(std::move(value));
    }
  }
  nlohmann::json j = {{"time", format_time_iso(r.received)},
                      {"exporter", r.exporter.to_string()},
                      {"version", r.version},
                      {"domain", r.domain},
                      {"template", r.template_id},
                      {"options", r.options},
                      {"fields", std::move(fields)}};
  // Only sFlow records say so: NetFlow/IPFIX lines stay as they were before sFlow existed.
  if (r.protocol == ExportProtocol::kSflow) j["protocol"] = "sflow";
  return j;
}

}  // namespace flowd::collector
