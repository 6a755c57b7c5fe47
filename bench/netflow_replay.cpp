// SPDX-License-Identifier: Apache-2.0
// Replays the export payloads of a capture to a collector over UDP at a paced rate with sendmmsg,
// cycling through the capture, and prints how many records (and data records) it sent, as counted
// by flowd's own decoders on the same payloads (NetFlow/IPFIX records, sFlow flow samples). Used by
// bench/netflow_e2e.sh against flowd and nfcapd, and by bench/sflow_e2e.sh against sfacctd.
//   flowd_netflow_replay PCAP PORT PACKETS_PER_S PACKETS [EXPORTERS]
// Sends to 127.0.0.1 only, from EXPORTERS sockets (default 1) in turn, batch by batch: several
// exporters let SO_REUSEPORT spread them over a collector's receive threads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "collector/decoder.hpp"
#include "collector/pcap_reader.hpp"
#include "collector/sflow.hpp"

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s PCAP PORT PACKETS_PER_S PACKETS [EXPORTERS]\n", argv[0]);
    return 2;
  }
  using namespace flowd::collector;
  std::vector<CapturedPayload> payloads;
  std::size_t skipped = 0;
  read_capture(
      argv[1],
      [&](const CapturedPayload& p) {
        if (!p.tcp) payloads.push_back(p);
      },
      skipped);
  if (payloads.empty()) {
    std::fprintf(stderr, "no UDP payloads in %s\n", argv[1]);
    return 1;
  }
  // Records per payload, as a collector that has seen the whole capture before decodes them. An
  // sFlow datagram's records are its flow samples (counter samples are not records).
  std::vector<std::size_t> records(payloads.size()), data(payloads.size());
  {
    Decoder d;
    SflowDecoder sflow;
    RecordBatch out;
    auto now = flowd::Clock::now();
    for (const auto& p : payloads)
      if (!looks_like_sflow(p.bytes)) d.decode(p.bytes, p.exporter, now, out);
    for (std::size_t i = 0; i < payloads.size(); ++i) {
      out.clear();
      if (looks_like_sflow(payloads[i].bytes))
        sflow.decode(payloads[i].bytes, payloads[i].exporter, now, out);
      else
        d.decode(payloads[i].bytes, payloads[i].exporter, now, out);
      records[i] = out.size();
      for (const auto& r : out) data[i] += r.options ? 0 : 1;
    }
  }
  const int port = std::atoi(argv[2]);
  const double rate = std::atof(argv[3]);
  const long total = std::atol(argv[4]);
  const int exporters = argc == 6 ? std::max(1, std::atoi(argv[5])) : 1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  std::vector<int> fds;
  for (int i = 0; i < exporters; ++i) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      std::perror("connect");
      return 1;
    }
    fds.push_back(fd);
  }
  constexpr int kBatch = 16;
  std::vector<mmsghdr> msgs(kBatch);
  std::vector<iovec> iov(kBatch);
  std::size_t sent_records = 0, sent_data = 0, next = 0;
  long sent = 0;
  const std::int64_t start = now_ns();
  while (sent < total) {
    int n = static_cast<int>(std::min<long>(kBatch, total - sent));
    for (int i = 0; i < n; ++i) {
      const auto& p = payloads[(next + static_cast<std::size_t>(i)) % payloads.size()];
      iov[static_cast<std::size_t>(i)] = {const_cast<std::uint8_t*>(p.bytes.data()),
                                          p.bytes.size()};
      msgs[static_cast<std::size_t>(i)] = {};
      msgs[static_cast<std::size_t>(i)].msg_hdr.msg_iov = &iov[static_cast<std::size_t>(i)];
      msgs[static_cast<std::size_t>(i)].msg_hdr.msg_iovlen = 1;
    }
    int fd = fds[static_cast<std::size_t>(sent / kBatch) % fds.size()];
    int done = sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0);
    if (done <= 0) continue;  // loopback full: retry (the sender never drops on its side)
    for (int i = 0; i < done; ++i) {
      std::size_t k = (next + static_cast<std::size_t>(i)) % payloads.size();
      sent_records += records[k];
      sent_data += data[k];
    }
    next = (next + static_cast<std::size_t>(done)) % payloads.size();
    sent += done;
    // Pace: the batch that ends at packet `sent` is due at start + sent / rate.
    const auto due = start + static_cast<std::int64_t>(static_cast<double>(sent) / rate * 1e9);
    if (const auto wait = due - now_ns(); wait > 0) {
      timespec ts{static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
      nanosleep(&ts, nullptr);
    }
  }
  const double secs = static_cast<double>(now_ns() - start) / 1e9;
  std::printf("packets=%ld records=%zu data_records=%zu seconds=%.3f achieved_pps=%.0f\n", sent,
              sent_records, sent_data, secs, static_cast<double>(sent) / secs);
  for (int fd : fds) close(fd);
  return 0;
}
