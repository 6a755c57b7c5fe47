// SPDX-License-Identifier: Apache-2.0
#include "collector/pcap_reader.hpp"

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>

#include "collector/ipfix_stream_framer.hpp"

namespace flowd::collector {
namespace {

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

struct StreamKey {
  Exporter from;
  IpAddress to;
  std::uint16_t to_port;
  bool operator<(const StreamKey& o) const {
    return std::tie(from.address.family, from.address.bytes, from.port, to.bytes, to_port) <
           std::tie(o.from.address.family, o.from.address.bytes, o.from.port, o.to.bytes,
                    o.to_port);
  }
};

}  // namespace

void read_capture(const std::string& path,
                  const std::function<void(const CapturedPayload&)>& on_payload,
                  std::size_t& skipped) {
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  if (!p) throw std::runtime_error(path + ": " + err);
  int link = pcap_datalink(p);
  std::map<StreamKey, IpfixStreamFramer> streams;  // per TCP stream: bytes not yet a whole message
  pcap_pkthdr* h = nullptr;
  const u_char* data = nullptr;
  int rc;
  while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
    std::size_t len = h->caplen, off = 0;
    std::uint16_t ethertype = 0;
    switch (link) {
      case DLT_EN10MB:
        if (len < 14) break;
        ethertype = be16(data + 12);
        off = 14;
        while ((ethertype == 0x8100 || ethertype == 0x88a8) && len >= off + 4) {
          ethertype = be16(data + off + 2);
          off += 4;
        }
        break;
      case DLT_LINUX_SLL:
        if (len < 16) break;
        ethertype = be16(data + 14);
        off = 16;
        break;
      case DLT_NULL:
      case DLT_LOOP: {
        if (len < 4) break;
        std::uint32_t af;
        std::memcpy(&af, data, 4);
        if (link == DLT_LOOP) af = ntohl(af);
        ethertype = af == 2 ? 0x0800 : 0x86dd;
        off = 4;
        break;
      }
      case DLT_RAW:
        ethertype = len && (data[0] >> 4) == 6 ? 0x86dd : 0x0800;
        break;
      default:
        pcap_close(p);
        throw std::runtime_error(path + ": unsupported link type " + std::to_string(link));
    }
    CapturedPayload out;
    out.time =
        TimePoint(std::chrono::seconds(h->ts.tv_sec) + std::chrono::microseconds(h->ts.tv_usec));
    IpAddress dst;
    std::uint8_t proto = 0;
    std::size_t l4 = 0;
    if (ethertype == 0x0800 && len >= off + 20) {
      const std::uint8_t* ip = data + off;
      std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
      proto = ip[9];
      out.exporter.address.family = AF_INET;
      std::memcpy(out.exporter.address.bytes.data(), ip + 12, 4);
      dst.family = AF_INET;
      std::memcpy(dst.bytes.data(), ip + 16, 4);
      std::size_t total = be16(ip + 2);
      if (ihl < 20 || (be16(ip + 6) & 0x1fff) != 0)
        proto = 0;  // options-less check, later fragments
      len = std::min(len, off + total);
      l4 = off + ihl;
    } else if (ethertype == 0x86dd && len >= off + 40) {
      const std::uint8_t* ip = data + off;
      proto = ip[6];
      out.exporter.address.family = AF_INET6;
      std::memcpy(out.exporter.address.bytes.data(), ip + 8, 16);
      dst.family = AF_INET6;
      std::memcpy(dst.bytes.data(), ip + 24, 16);
      len = std::min(len, off + 40 + be16(ip + 4));
      l4 = off + 40;
    }
    if (proto == 17 && len >= l4 + 8) {
      out.exporter.port = be16(data + l4);
      out.bytes.assign(data + l4 + 8, data + len);
      on_payload(out);
    } else if (proto == 6 && len >= l4 + 20) {
      std::size_t doff = static_cast<std::size_t>(data[l4 + 12] >> 4) * 4;
      if (len < l4 + doff) {
        ++skipped;
        continue;
      }
      out.exporter.port = be16(data + l4);
      out.tcp = true;
      auto& framer = streams[StreamKey{out.exporter, dst, be16(data + l4 + 2)}];
      auto deliver = [&](std::span<const std::uint8_t> message) {
        out.bytes.assign(message.begin(), message.end());
        on_payload(out);
      };
      // IPFIX over TCP: messages back to back, each as long as its header says (RFC 7011 §10.4).
      if (framer.feed(std::span<const std::uint8_t>(data + l4 + doff, len - l4 - doff), deliver) ==
          IpfixStreamFramer::Status::kOutOfSync) {
        // Not IPFIX, or a broken stream: hand over what we have (the decoder says what is wrong
        // with it) and take the next segment as the start of a message.
        deliver(framer.unframed());
        framer.reset();
      }
    } else {
      ++skipped;
    }
  }
  std::string error = rc == -1 ? std::string(pcap_geterr(p)) : std::string();
  pcap_close(p);
  if (!error.empty()) throw std::runtime_error(path + ": " + error);
}

}  // namespace flowd::collector
